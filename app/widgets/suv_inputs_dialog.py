"""Asks for the patient's weight and / or the injected dose when a PET header lacks them (or holds zero), so
that SUV can be computed; the values go to `engine.io.suv.suv_factors(entered=...)` and the viewer shows them
marked as entered next to the factor."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

FIELDS = {"weight_kg": ("Patient weight", " kg", 1.0, 400.0, 1, 70.0, 1.0),
          "dose_bq": ("Injected dose (decay-corrected to the injection time)", " MBq", 1.0, 3000.0, 1, 300.0, 1e6)}


class SUVInputsDialog(QDialog):
    """One spin box per missing input; `values()` gives them in the engine's units (kg, Bq)."""

    def __init__(self, message: str, missing: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("SUV needs the patient's weight and dose")
        self.setObjectName("suvInputsDialog")
        self.message = text = QLabel(f"{message}\n\nEnter the value(s) from the scan record to compute SUV. They are kept with the "
                      "case and shown, marked as entered, next to the SUV factor.")
        text.setWordWrap(True)
        text.setMinimumWidth(460)
        form = QFormLayout()
        self.spins: dict[str, QDoubleSpinBox] = {}
        for key in missing:
            if key not in FIELDS:
                continue
            label, suffix, low, high, decimals, default, _scale = FIELDS[key]
            spin = QDoubleSpinBox()
            spin.setRange(low, high)
            spin.setDecimals(decimals)
            spin.setSuffix(suffix)
            spin.setValue(default)
            spin.setObjectName(key)
            form.addRow(label, spin)
            self.spins[key] = spin
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Compute SUV")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def set_value(self, key: str, value: float) -> None:
        """Type a value in the box of `key` (kg for the weight, MBq for the dose)."""
        self.spins[key].setValue(value)

    def values(self) -> dict[str, float]:
        """{"weight_kg": kg, "dose_bq": Bq} for the inputs asked."""
        return {key: spin.value() * FIELDS[key][6] for key, spin in self.spins.items()}
