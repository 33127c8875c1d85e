"""Finetuning tasks: task files (classification, NER), SQuAD features and answers, metrics, the task card."""
