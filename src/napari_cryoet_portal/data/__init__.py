"""Bytes → arrays: OME-Zarr pyramids, annotation ndjson, glb meshes. No Qt, no napari."""
