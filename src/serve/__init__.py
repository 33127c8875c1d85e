"""Serving a finetuned model: backends (MindSpore, MindIR, ONNX), raw-text pipelines, prediction files."""
