"""Errors meant for a person: the CLI and the flow print their message, not a traceback."""


class KizunaError(Exception):
    """An expected failure with a message that says what happened and what to do."""


class ExportError(KizunaError):
    """A nightly export cannot be loaded (bad file, undecodable, missing column)."""


class QualityGateFailed(KizunaError):
    """A data-quality check of severity `error` failed: the run stops before sending.

    `result` is the gate's `kizuna.quality.GateResult` (every check, passed or not)."""

    def __init__(self, message: str, result=None) -> None:
        super().__init__(message)
        self.result = result


class ScenarioError(KizunaError):
    """A scenario file is invalid."""


class NightRejected(ExportError):
    """A night was refused (its check failed, or a file could not be loaded): nothing of it was kept,
    later nights were not loaded. `.night`, `.cause` (the underlying error), `.loaded` (nights committed before)."""

    def __init__(self, message: str, night=None, cause: BaseException | None = None, loaded=()) -> None:
        super().__init__(message)
        self.night, self.cause, self.loaded = night, cause, list(loaded)
