"""Materials properties over a ForceProvider: stress, elastic constants, vacancies, surfaces,
grain-boundary segregation. Every workflow sends its cells in one call (or one relax_batch)."""

from mlipserve.simulation.properties.bulk import FccReference, relaxed_fcc, voigt_to_matrix
from mlipserve.simulation.properties.elastic import (
    ElasticResult,
    cubic_born_criteria,
    elastic_moduli,
    elastic_tensor,
)
from mlipserve.simulation.properties.grain_boundary import (
    SegregationResult,
    segregation_energies,
    symmetric_tilt_gb,
)
from mlipserve.simulation.properties.stress import StressCheck, check_stress
from mlipserve.simulation.properties.surface import SurfaceResult, surface_energies
from mlipserve.simulation.properties.vacancy import (
    VacancyResult,
    random_fcc_alloy,
    vacancy_formation_energies,
)

__all__ = [
    "ElasticResult",
    "FccReference",
    "SegregationResult",
    "StressCheck",
    "SurfaceResult",
    "VacancyResult",
    "check_stress",
    "cubic_born_criteria",
    "elastic_moduli",
    "elastic_tensor",
    "random_fcc_alloy",
    "relaxed_fcc",
    "segregation_energies",
    "surface_energies",
    "symmetric_tilt_gb",
    "vacancy_formation_energies",
    "voigt_to_matrix",
]
