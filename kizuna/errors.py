"""Errors meant for a person: the CLI and the flow print their message, not a traceback."""


class KizunaError(Exception):
    """An expected failure with a message that says what happened and what to do."""


class ExportError(KizunaError):
    """A nightly export cannot be loaded (bad file, undecodable, missing column)."""


class QualityGateFailed(KizunaError):
    """A data-quality check of severity `error` failed: the run stops before sending."""


class ScenarioError(KizunaError):
    """A scenario file is invalid."""
