"""Error types that map to the exit codes of the CLI contract.

exit 2: ``UserError`` (bad suite, data, arguments) -- the message says what and where.
exit 3: ``EncoderError`` / internal failures.
"""

from __future__ import annotations


class EvalHarnessError(Exception):
    exit_code = 3


class UserError(EvalHarnessError):
    """Bad input from the user: a suite, a data file, a CLI argument. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        self.source = source
        self.line = line
        self.field = field
        self.hint = hint
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.source:
            where = str(self.source)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        text = f"{where}{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class EncoderError(EvalHarnessError):
    """An encoder failed or produced bad output. Exit code 3 (other encoders still run)."""

    exit_code = 3

    def __init__(self, encoder: str, message: str, *, row: int | None = None):
        self.encoder = encoder
        self.row = row
        text = f"encoder '{encoder}': {message}"
        if row is not None:
            text += f" (first bad row: {row})"
        super().__init__(text)
