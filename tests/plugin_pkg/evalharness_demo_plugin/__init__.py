"""An example evalharness plugin (see docs/extending.md)."""
