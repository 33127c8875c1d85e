"""BERT and NEZHA pretraining, finetuning and evaluation on MindSpore."""
