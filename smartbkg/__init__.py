"""smartbkg: smart background Monte Carlo with graph neural networks and importance sampling."""

__version__ = "0.1.0"
