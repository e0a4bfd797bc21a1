"""``tamio-async``: list tickets from the command line, or try the client on a fake API.

::

    tamio-async tickets --all --open --format csv -o open.csv   # Ctrl-C, then again with --resume
    tamio-async serve-fake --tickets 5000     # a local fake API to point the client at
    tamio-async demo                          # 20,000 tickets fetched concurrently, verified

Data goes to stdout (or ``-o FILE``); the progress bar (on a terminal only), the summary line,
messages and errors go to stderr. Exit status: 0 done (also when the reader of a pipe left),
1 API, network or file error, 2 bad command line, 130 interrupted (SIGINT, Ctrl-C), 143
terminated (SIGTERM). rich (the ``cli`` extra) draws the progress bar and the demo's panel;
without it everything still works, in plain text. The API key never appears in any output,
message or log.

Modules: `._parser` (options and their messages), `._commands` (``tickets`` and the command
table), `._export` (the export to a file that resumes), `._resume` (its files and protocol),
`._fake` (``serve-fake``, ``demo``), `._output` (formats and fields), `._progress` (bar and
summary line), `._common` (what commands share), `._main` (signals, logging, exit statuses).
It uses the public API of `tamio_async` only.
"""

from ._main import main

__all__ = ["main"]
