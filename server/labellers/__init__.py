"""Reference labellers: structures in, labelled structures (energy, forces, stress) out."""
