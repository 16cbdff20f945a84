"""One module per family of file formats; ``recgen.data.loaders`` detects a path's format and dispatches."""
