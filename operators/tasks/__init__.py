"""Lightning modules that hold the training tasks. Networks stay plain ``torch.nn.Module``s."""
