"""Neural operators (FNO, space-time FNO, ...) and the reusable layers, losses and
normalizers they are built from.

All operators take and return channel-first tensors ``(B, C, *S)`` where ``S`` is the
spatial grid (1, 2 or 3 dims).
"""
