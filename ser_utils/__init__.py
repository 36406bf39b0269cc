"""ser_utils: the package behind the CREMA-D speech emotion recognition notebooks.

Import the module you need (``from ser_utils import dataset, features, plots``);
importing the package has no side effects.
"""

__version__ = "0.1.0"
