"""Layer and model names that do not collide inside one Keras session."""

import keras


def unique(prefix):
    """``prefix`` made unique the way Keras names its own layers (``prefix``, ``prefix_1``, ...)."""
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"
