#!/usr/bin/python3
"""A WebKitGTK browser for WebKitWebDriver with a storage quota of our choosing.

WebKitWebDriver starts MiniBrowser, whose automation sessions get no
storage settings at all; its `webkitgtk:browserOptions.binary` capability
starts any other browser that allows automation instead. This one is that
browser, and no more: one web context whose website data live in a fresh
directory (`--data-dir`) with WebKit's own quota set to a share of the disk
(`--origin-storage-ratio`, `--total-storage-ratio`: WebKit computes an
origin's quota as that share of the volume holding the directory), so
that the tests see a full quota the way a person on a nearly full phone
would: IndexedDB refusing a write with QuotaExceededError.

Used by tests/js/engines.mjs (`launchEngine('webkit', { storageLimitKb })`).
Needs python3-gi and gir1.2-webkit2-4.1 (scripts/setup.sh installs them).
"""

import argparse
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gtk, WebKit2  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--origin-storage-ratio", type=float, required=True)
    parser.add_argument("--total-storage-ratio", type=float, required=True)
    args, _ = parser.parse_known_args()

    manager = WebKit2.WebsiteDataManager(
        base_data_directory=f"{args.data_dir}/data",
        base_cache_directory=f"{args.data_dir}/cache",
        origin_storage_ratio=args.origin_storage_ratio,
        total_storage_ratio=args.total_storage_ratio,
    )
    context = WebKit2.WebContext(website_data_manager=manager)
    context.set_automation_allowed(True)
    windows = []

    def create_web_view(_session):
        view = WebKit2.WebView(web_context=context, is_controlled_by_automation=True)
        window = Gtk.Window()
        window.set_default_size(800, 600)
        window.add(view)
        window.show_all()
        windows.append(window)

        def closed(_view):
            window.destroy()
            windows.remove(window)
            if not windows:
                Gtk.main_quit()

        view.connect("close", closed)
        return view

    def automation_started(_context, session):
        info = WebKit2.ApplicationInfo()
        info.set_name("localtune-webkit-storage")
        info.set_version(
            WebKit2.get_major_version(),
            WebKit2.get_minor_version(),
            WebKit2.get_micro_version(),
        )
        session.set_application_info(info)
        session.connect("create-web-view", create_web_view)

    context.connect("automation-started", automation_started)
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
