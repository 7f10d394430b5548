"""Running trained models away from training: the ONNX bundle export and the inference server."""
