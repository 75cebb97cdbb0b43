"""Matchmaking profiles as a file: `export FILE` writes every profile as JSON, `import FILE`
creates or updates profiles by name, so queues can live in the game's repository and move between
environments. An import is validated exactly as the admin form validates (matchmaking.forms), and
is all or nothing: one bad profile and nothing is written."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.forms.models import model_to_dict

from matchmaking.forms import PROFILE_FIELDS, ProfileForm
from matchmaking.models import Profile

FORMAT = 1


def profiles_export() -> dict:
    return {
        "format": FORMAT,
        "profiles": [
            {field: getattr(profile, field) for field in PROFILE_FIELDS}
            for profile in Profile.objects.order_by("name")
        ],
    }


def _entries(document) -> list:
    if isinstance(document, dict) and "profiles" in document:
        if document.get("format", FORMAT) != FORMAT:
            raise CommandError(f"unknown format {document['format']!r} (this version reads 1)")
        document = document["profiles"]
    if not isinstance(document, list):
        raise CommandError('the file must hold {"profiles": [...]} or a list of profiles')
    return document


def _form_for(index: int, entry) -> ProfileForm:
    where = f"profile #{index + 1}"
    if not isinstance(entry, dict):
        raise CommandError(f"{where}: must be an object")
    name = entry.get("name")
    if isinstance(name, str) and name:
        where = f"profile {name!r}"
    unknown = sorted(set(entry) - set(PROFILE_FIELDS))
    if unknown:
        known = ", ".join(PROFILE_FIELDS)
        raise CommandError(f"{where}: unknown field {unknown[0]!r} (known: {known})")
    existing = Profile.objects.filter(name=name).first() if isinstance(name, str) else None
    # Fields the file leaves out keep their current value (or the default for a new profile).
    data = model_to_dict(existing or Profile(), fields=PROFILE_FIELDS)
    data.update(entry)
    data["rules"] = json.dumps(data["rules"])  # the form reads the editor's text
    form = ProfileForm(data=data, instance=existing)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
        )
        raise CommandError(f"{where}: {problems}")
    return form


class Command(BaseCommand):
    help = "Export matchmaking profiles to a JSON file, or import them from one (by name)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["export", "import"])
        parser.add_argument("file", help="a JSON file; '-' for standard output or input")

    def handle(self, *args, action, file, **options):
        if action == "export":
            text = json.dumps(profiles_export(), indent=2, ensure_ascii=False) + "\n"
            if file == "-":
                self.stdout.write(text, ending="")
            else:
                Path(file).write_text(text, encoding="utf-8")
                self.stderr.write(f"exported {Profile.objects.count()} profile(s) to {file}")
            return
        try:
            raw = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{file} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        entries = _entries(document)
        names = [entry.get("name") for entry in entries if isinstance(entry, dict)]
        repeated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
        if repeated:
            raise CommandError(f"profile {repeated[0]!r} appears more than once")
        with transaction.atomic():
            forms = [_form_for(index, entry) for index, entry in enumerate(entries)]
            created = sum(form.instance.pk is None for form in forms)
            for form in forms:
                form.save()
        self.stderr.write(
            f"imported {len(forms)} profile(s): {created} created, {len(forms) - created} updated"
        )
