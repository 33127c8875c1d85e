"""Pretraining data: tokenization, corpus reading, instance building, TFRecord records and datasets."""
