"""Device-specific implementations behind the model blocks (GELU, bias, dense, LayerNorm, dropout).

Each exists because a MindSpore default was slower or used more memory on some device; docs/cpu_workarounds.md
says which, by how much, and when each can go.
"""
