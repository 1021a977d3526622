"""Delivery: the digest as an e-mail (HTML with a plain-text part) over SMTP.

Host, port, TLS mode and credentials come from the environment only, never from the config file:
MONITOR_SMTP_HOST, MONITOR_SMTP_PORT, MONITOR_SMTP_TLS (starttls, ssl or none),
MONITOR_SMTP_USER, MONITOR_SMTP_PASSWORD, MONITOR_SMTP_FROM, MONITOR_SMTP_TO (comma-separated,
else the config's digest.recipients).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

TLS_MODES = ("starttls", "ssl", "none")


class MailProblem(Exception):
    """Sending is asked for but cannot happen; the message says what to set."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str
    user: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]

    @classmethod
    def from_environment(
        cls, recipients: Sequence[str] = (), environ: Mapping[str, str] | None = None
    ) -> SmtpSettings:
        env = os.environ if environ is None else environ
        host = env.get("MONITOR_SMTP_HOST")
        if not host:
            raise MailProblem("set MONITOR_SMTP_HOST (and MONITOR_SMTP_FROM) to send the digest")
        tls = env.get("MONITOR_SMTP_TLS", "starttls").lower()
        if tls not in TLS_MODES:
            raise MailProblem(
                f"MONITOR_SMTP_TLS is {tls!r}; expected one of {', '.join(TLS_MODES)}"
            )
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[tls]
        try:
            port = int(env.get("MONITOR_SMTP_PORT", default_port))
        except ValueError:
            raise MailProblem("MONITOR_SMTP_PORT must be a number") from None
        to = [a.strip() for a in env.get("MONITOR_SMTP_TO", "").split(",") if a.strip()]
        to = to or list(recipients)
        if not to:
            raise MailProblem(
                "no recipients: set MONITOR_SMTP_TO or digest.recipients in the config"
            )
        sender = env.get("MONITOR_SMTP_FROM") or env.get("MONITOR_SMTP_USER")
        if not sender:
            raise MailProblem("set MONITOR_SMTP_FROM to the address the digest is sent from")
        return cls(
            host=host,
            port=port,
            tls=tls,
            user=env.get("MONITOR_SMTP_USER") or None,
            password=env.get("MONITOR_SMTP_PASSWORD") or None,
            sender=sender,
            recipients=tuple(to),
        )


def digest_message(subject: str, text: str, html: str, settings: SmtpSettings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send(message: EmailMessage, settings: SmtpSettings, timeout: float = 30.0) -> None:
    """Send over SMTP; connection and authentication problems become MailProblem."""
    context = ssl.create_default_context()
    try:
        if settings.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        with client:
            if settings.tls == "starttls":
                client.starttls(context=context)
            if settings.user and settings.password:
                client.login(settings.user, settings.password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception text never holds the password; the host and port say where it failed.
        raise MailProblem(
            f"could not send through {settings.host}:{settings.port}: {type(exc).__name__}: {exc}"
        ) from None
