"""The profile form: used by the admin and by `manage.py matchmaking_profiles import`, so a file
is validated exactly as the form is."""

import json

from django import forms

from matchmaking.models import Profile


class RulesField(forms.JSONField):
    """A JSON field whose syntax errors say where (line and column), not just "invalid"."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(
                    f"This is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                    code="invalid",
                ) from None
        return super().to_python(value)


class ProfileForm(forms.ModelForm):
    rules = RulesField(
        widget=forms.Textarea(
            attrs={"class": "rules-editor", "rows": 28, "cols": 100, "spellcheck": "false"}
        ),
        help_text="Gen2-style rules as JSON: see docs/matchmaking.md. Checked when you save.",
    )

    class Meta:
        model = Profile
        fields = ("name", "title", "description", "mode", "ticket_ttl", "enabled", "rules")

    # The rules are checked by Profile.clean (rules.parse_rules), which the form runs on save.


PROFILE_FIELDS = ProfileForm.Meta.fields
