"""Forms of the main pages."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField


class LanguageForm(FlaskForm):
    """Switch the portal's language; works without JavaScript (one button per language)."""

    language = HiddenField()
    next = HiddenField()
    submit = SubmitField()
