"""Pictures: :mod:`bpnet_core.viz.draw` (OpenCV, ndarray → ndarray) and, imported lazily, the widget explorer."""
