"""The settlement report's days (a GET form)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
)
from wtforms.validators import Optional, ValidationError

from app.i18n import lazy_gettext as _l


class SettlementForm(FlaskForm):
    """The settlement report's days: ``?from=&to=`` (a GET form)."""

    class Meta:
        csrf = False

    date_from = DateField(_l("From (date)"), name="from", validators=[Optional()])
    date_to = DateField(_l("To (date)"), name="to", validators=[Optional()])

    def validate_date_to(self, field) -> None:
        from app.treasury.reports.services import MAX_SETTLEMENT_DAYS

        if field.data and self.date_from.data:
            if field.data < self.date_from.data:
                raise ValidationError(_l("The end date must not be before the start date."))
            if (field.data - self.date_from.data).days >= MAX_SETTLEMENT_DAYS:
                raise ValidationError(_l("Choose at most 366 days."))
