"""What the apps' admin pages share."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows an operator reads but never adds, edits or deletes by hand: they change only through
    the services (which tell the players, write the audit log and keep Edgegap in step), from
    the buttons and actions each page adds."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
