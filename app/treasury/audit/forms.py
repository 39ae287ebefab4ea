"""The audit log's search (a GET form); the platform's adds whose entries."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    SelectField,
    StringField,
)
from wtforms.validators import Length, Optional, ValidationError

from app.i18n import lazy_gettext as _l
from app.treasury.form_styles import SELECT_LOOK


class AuditFilterForm(FlaskForm):
    """The audit log's search: a GET form, bookmarkable."""

    class Meta:
        csrf = False

    date_from = DateField(_l("From (date)"), validators=[Optional()])
    date_to = DateField(_l("To (date)"), validators=[Optional()])
    action = SelectField(_l("Action"), validators=[Optional()], render_kw=SELECT_LOOK)
    subject = StringField(
        _l("Subject (receipt number, e-mail address)"),
        validators=[Optional(), Length(max=254)],
        render_kw={"spellcheck": "false"},
    )

    def __init__(self, *args, actions: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [("", _l("Any"))] + actions

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date must not be before the start date."))

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(field.data for field in self)

    def filters(self):
        """The valid filters as plain values (call after ``validate``)."""
        from app.audit.services import AuditFilters

        def valid(name: str):
            field = self[name]
            return None if field.errors or not field.data else field.data

        return AuditFilters(
            date_from=valid("date_from"), date_to=valid("date_to"), action=valid("action"), subject=valid("subject")
        )
