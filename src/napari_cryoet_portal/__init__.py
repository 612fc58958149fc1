"""Browse the CryoET Data Portal from napari."""

__version__ = "0.1.0"
