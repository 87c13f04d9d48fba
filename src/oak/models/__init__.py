"""The model zoo: one registry over timm, plus the study's models timm lacks."""

from oak.models.registry import available_models, check_model_name, create_model, parameter_count, set_batchnorm, zero_init_residual

__all__ = ["available_models", "check_model_name", "create_model", "parameter_count", "set_batchnorm", "zero_init_residual"]
