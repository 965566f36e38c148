"""Importers and exporter of published dataset layouts (NeRFace, AD-NeRF, HFA-GP)."""
