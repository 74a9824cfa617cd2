"""Plumbing shared by the entry points: config resolvers, object construction, checkpoints, DDP in sweeps."""
