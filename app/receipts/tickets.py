"""Tickets as a PDF: one A6-sized block per ticket with its code and a QR code for the door."""

from __future__ import annotations

from collections.abc import Sequence

import segno
from babel.dates import format_datetime
from flask import current_app, url_for
from flask_babel import force_locale
from fpdf import FPDF

from app.catalog.models import Ticket
from app.i18n import gettext
from app.payments.models import Payment, PaymentLine
from app.payments.services import payment_timezone
from app.receipts.pdf import FONT_FAMILY, MARGIN_MM, QR_BORDER, QR_SCALE, find_receipt_font

#: Side of a ticket's QR code in millimetres: door staff scan it from a phone screen or paper.
TICKET_QR_MM = 45


def ticket_check_url(code: str) -> str:
    """The door's check page with the ticket's code filled in (PUBLIC_URL if set)."""
    public_url = current_app.config.get("PUBLIC_URL")
    if public_url:
        return public_url.rstrip("/") + url_for("tickets.check", code=code)
    return url_for("tickets.check", code=code, _external=True)


def ticket_qr(code: str) -> segno.QRCode:
    """The QR code printed on a ticket: the door's check page for its code."""
    return segno.make_qr(ticket_check_url(code), error="m")


def render_tickets_pdf(
    payment: Payment, tickets: Sequence[tuple[PaymentLine, Ticket]], language: str, *, compress: bool = True
) -> bytes:
    """One page per ticket: event, holder, code in large letters, QR code; returns the PDF's bytes."""
    import io

    font = find_receipt_font()
    with force_locale(language):
        pdf = FPDF(
            orientation="portrait", unit="mm", format=(148, 210)
        )  # A5, given in mm: fpdf2 warns about its named A5
        pdf.set_compression(compress)
        pdf.set_title(gettext("Tickets of %(reference)s", reference=payment.reference))
        pdf.set_lang(language)
        pdf.set_creator("Civic Pay")
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(auto=False)
        pdf.add_font(FONT_FAMILY, "", str(font.regular))
        pdf.add_font(FONT_FAMILY, "B", str(font.bold))
        zone = payment_timezone(payment)
        paid_at = payment.completed_at or payment.created_at
        for number, (line, ticket) in enumerate(tickets, start=1):
            assert line.item is not None
            pdf.add_page()
            pdf.set_font(FONT_FAMILY, size=10)
            pdf.multi_cell(0, 5, line.agency.name(language), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font(FONT_FAMILY, "B", 16)
            pdf.multi_cell(0, 8, line.item.name(language), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font(FONT_FAMILY, size=10)
            for question in line.item.questions or []:
                answer = (line.answers or {}).get(question["key"])
                if answer:
                    label = question.get("label_en") if language == "en" else question.get("label_el")
                    pdf.multi_cell(0, 5, f"{label or question['key']}: {answer}", new_x="LMARGIN", new_y="NEXT")
            pdf.multi_cell(
                0,
                5,
                gettext("Ticket %(number)s of %(count)s", number=number, count=len(tickets)),
                new_x="LMARGIN",
                new_y="NEXT",
            )
            pdf.ln(4)
            buffer = io.BytesIO()
            ticket_qr(ticket.code).save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
            buffer.seek(0)
            x = (pdf.w - TICKET_QR_MM) / 2
            pdf.image(
                buffer,
                x=x,
                y=pdf.get_y(),
                w=TICKET_QR_MM,
                h=TICKET_QR_MM,
                alt_text=gettext("QR code of ticket %(code)s", code=ticket.code),
            )
            pdf.set_y(pdf.get_y() + TICKET_QR_MM + 3)
            pdf.set_font(FONT_FAMILY, "B", 18)
            pdf.cell(0, 10, ticket.code, align="C", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font(FONT_FAMILY, size=9)
            pdf.multi_cell(
                0,
                5,
                gettext(
                    "Paid on %(date)s, receipt %(reference)s. Show this page at the entrance; each ticket is let in once.",
                    date=format_datetime(paid_at, "medium", tzinfo=zone, locale=language),
                    reference=payment.reference,
                ),
                align="C",
                new_x="LMARGIN",
                new_y="NEXT",
            )
        return bytes(pdf.output())
