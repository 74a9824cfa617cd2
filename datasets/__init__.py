"""Data generation and loading for pdeforge: Gaussian random fields (``grf``), per-sample seeding
(``seeding``), the PDE problems and their verified solvers (``pdes``), HDF5 storage and data modules."""
