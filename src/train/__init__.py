"""Training: the train step, optimizers, the loop, callbacks, distributed set-up and the finetuning driver."""
