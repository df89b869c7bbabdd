"""Small helpers shared by several keras_seg packages."""
