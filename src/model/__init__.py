"""The networks: BERT/NEZHA encoder, pretraining heads, task heads, CRF, checkpoint name mapping."""
