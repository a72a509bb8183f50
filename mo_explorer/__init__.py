"""mo-explorer: steer a language model's output along several reward objectives at once."""

__version__ = "0.1.0"
