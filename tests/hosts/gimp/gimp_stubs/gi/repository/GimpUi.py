"""Interactive dialogs: accepted or cancelled as a test sets ``ANSWER``; ``PICK`` {argument: model id}
is what the user chooses in the model menus before accepting."""

ANSWER = True
PICK = {}
SHOWN = []  # ("init", name), ("dialog", title), ("fill", [argument names])
DIALOGS = []  # every ProcedureDialog made, to inspect the widgets packed into it


def init(name):
    SHOWN.append(("init", name))


class ProcedureDialog:
    def __init__(self, procedure, config, title):
        from . import Gtk

        self.procedure, self.config, self.title = procedure, config, title
        self.content = Gtk.Box()

    @classmethod
    def new(cls, procedure, config, title):
        SHOWN.append(("dialog", title))
        dialog = cls(procedure, config, title)
        DIALOGS.append(dialog)
        return dialog

    def fill(self, names):
        unknown = [n for n in names or [] if n not in self.procedure.arguments]
        assert not unknown, "no such arguments: %r" % unknown
        SHOWN.append(("fill", list(names) if names is not None else None))

    def get_content_area(self):
        return self.content

    def combos(self):
        """{mnemonic label: the ComboBoxText beside it} of the rows packed into the dialog."""
        from . import Gtk

        return {row.children[0].text: row.children[1] for row in self.content.children if isinstance(row, Gtk.Box)}

    def notes(self):
        """The texts of the lines (labels) packed into the dialog."""
        from . import Gtk

        return [child.text for child in self.content.children if isinstance(child, Gtk.Label)]

    def run(self):
        for label, combo in self.combos().items():
            name = label.lstrip("_").lower().replace(" ", "-")
            if name in PICK:
                assert combo.set_active_id(PICK[name]), "%r is not in the %s menu" % (PICK[name], label)
        return ANSWER

    def destroy(self):
        pass
