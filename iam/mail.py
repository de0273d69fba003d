"""Outgoing mail: SMTP when IAM_MAIL_URL is set (`smtp://host:port`, `smtps://...`,
`smtp://user:password@host:port?starttls=1`), otherwise the message is written to the log
(a development convenience: it then contains whatever secret link the message carries).

Messages go out from a background thread, so an endpoint answers in the same time
whether or not it sent anything.
"""
import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

log = logging.getLogger(__name__)


def send(to, subject, body):
    config = current_app.config
    message = EmailMessage()
    message["From"] = config.get("IAM_MAIL_FROM", "iam@localhost")
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    url = config.get("IAM_MAIL_URL")
    if not url:
        log.info("mail (IAM_MAIL_URL is not set, so it is logged instead of sent)\n%s", message)
        return None
    thread = threading.Thread(target=_deliver, args=(url, message), daemon=True, name="iam-mail")
    thread.start()
    return thread


def _deliver(url, message):
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=10,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=10)
        with client:
            if options.get("starttls") == ["1"]:
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
        log.info("mail %r sent to %s", message["Subject"], message["To"])
    except (OSError, smtplib.SMTPException):
        log.exception("sending mail to %s failed", message["To"])
