"""The few GTK 3 widgets the plug-in's dialog adds to GIMP's procedure dialog (model menus)."""


class Orientation:
    HORIZONTAL, VERTICAL = 0, 1


class Box:
    def __init__(self, orientation=Orientation.VERTICAL, spacing=0):
        self.children = []

    def pack_start(self, child, expand, fill, padding):
        self.children.append(child)

    def show_all(self):
        pass


class Label:
    def __init__(self, text):
        self.text, self.mnemonic_widget, self.xalign, self.shown = text, None, 0.5, False

    @classmethod
    def new(cls, text):
        return cls(text)

    @classmethod
    def new_with_mnemonic(cls, text):
        return cls(text)

    def set_xalign(self, xalign):
        self.xalign = xalign

    def show(self):
        self.shown = True

    def set_mnemonic_widget(self, widget):
        self.mnemonic_widget = widget


class ComboBoxText:
    def __init__(self):
        self.items, self.active = [], None  # [(id, text)]

    @classmethod
    def new(cls):
        return cls()

    def append(self, id, text):  # noqa: A002 - GTK's own parameter name
        self.items.append((id, text))

    def ids(self):
        return [i for i, _ in self.items]

    def set_active_id(self, active_id):
        if active_id not in self.ids():
            return False
        self.active = active_id
        return True

    def get_active_id(self):
        return self.active
