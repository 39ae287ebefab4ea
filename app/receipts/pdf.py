"""The PDF receipt, laid out with fpdf2 in a Unicode font so Greek names print as they are."""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import segno
from babel.dates import format_datetime
from flask_babel import force_locale
from fpdf import FPDF, FontFace

from app.domain.money import format_money
from app.i18n import gettext
from app.payments.models import Payment
from app.payments.services import payment_timezone

#: Where DejaVu Sans is looked for: the copy shipped with the portal (free licence, see
#: app/receipts/fonts/LICENSE; every receipt then looks the same on every server), then the
#: folders where operating systems put it (Debian's fonts-dejavu-core first).
FONT_FOLDERS = (
    Path(__file__).resolve().parent / "fonts",
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)
FONT_FAMILY = "DejaVu"
#: Side of the printed QR code, in millimetres: big enough for a phone at arm's length.
QR_SIZE_MM = 36
#: Quiet zone around the QR code, in modules (the QR standard asks for 4).
QR_BORDER = 4
QR_SCALE = 10
MARGIN_MM = 18


class ReceiptFontMissing(RuntimeError):
    """No Unicode TrueType font was found to print a receipt with."""


@dataclass(frozen=True)
class ReceiptFont:
    """The regular and bold files of the receipt's font (bold falls back to regular)."""

    regular: Path
    bold: Path


def _font_folders() -> list[Path]:
    folders = list(FONT_FOLDERS)
    # matplotlib ships DejaVu Sans; find_spec locates it without importing matplotlib.
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        folders.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    return folders


@cache
def find_receipt_font() -> ReceiptFont:
    """DejaVu Sans shipped with the portal (else the system's); raises ReceiptFontMissing with what to install."""
    folders = _font_folders()
    for folder in folders:
        regular = folder / "DejaVuSans.ttf"
        if regular.is_file():
            bold = folder / "DejaVuSans-Bold.ttf"
            return ReceiptFont(regular=regular, bold=bold if bold.is_file() else regular)
    searched = ", ".join(str(folder) for folder in folders)
    raise ReceiptFontMissing(
        "PDF receipts need the DejaVu Sans font (for Greek letters) and it was not found in "
        f"{searched}. Install it with `apt-get install fonts-dejavu-core` (Debian, Ubuntu) "
        "or `dnf install dejavu-sans-fonts` (Fedora)."
    )


def _png(qr: segno.QRCode) -> io.BytesIO:
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
    buffer.seek(0)
    return buffer


class _ReceiptPDF(FPDF):
    """A4 portrait with the portal's name and page numbers in the footer."""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT_FAMILY, size=8)
        self.set_text_color(90)
        self.cell(0, 5, f"Civic Pay · {self.page_no()}/{{nb}}", align="C")


def render_receipt_pdf(
    payment: Payment,
    *,
    payer_name: str | None,
    verification_url: str,
    qr: segno.QRCode,
    language: str,
    compress: bool = True,
) -> bytes:
    """Lay out a payment's receipt in the given language; returns the PDF file's bytes."""
    font = find_receipt_font()
    with force_locale(language):
        title = gettext("Payment receipt")
        pdf = _ReceiptPDF(orientation="portrait", unit="mm", format="A4")
        pdf.set_compression(compress)
        pdf.set_title(f"{title} {payment.reference}")
        pdf.set_lang(language)
        pdf.set_creator("Civic Pay")
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(auto=True, margin=20)
        pdf.add_font(FONT_FAMILY, "", str(font.regular))
        pdf.add_font(FONT_FAMILY, "B", str(font.bold))
        pdf.add_page()
        text_width = _qr_corner(pdf, qr, verification_url)
        _heading(pdf, title, payment.reference, text_width)
        _details(pdf, payment, payer_name, language, text_width)
        _lines(pdf, payment, language)
        pdf.ln(4)
        pdf.set_font(FONT_FAMILY, size=9)
        pdf.multi_cell(
            0,
            5,
            gettext("Anyone can check this receipt at %(url)s", url=verification_url),
            align="L",
            link=verification_url,
        )
        return bytes(pdf.output())


def _qr_corner(pdf: FPDF, qr: segno.QRCode, verification_url: str) -> float:
    """Put the QR code in the top right corner; returns the width left for text beside it."""
    qr_x = pdf.w - MARGIN_MM - QR_SIZE_MM
    pdf.image(
        _png(qr),
        x=qr_x,
        y=MARGIN_MM,
        w=QR_SIZE_MM,
        h=QR_SIZE_MM,
        link=verification_url,
        alt_text=gettext("QR code of the verification page of this receipt"),
    )
    pdf.set_xy(qr_x - 4, MARGIN_MM + QR_SIZE_MM + 1)
    pdf.set_font(FONT_FAMILY, size=7)
    pdf.multi_cell(QR_SIZE_MM + 8, 3.5, gettext("Scan to verify this receipt"), align="C")
    return qr_x - MARGIN_MM - 6


def _heading(pdf: FPDF, title: str, reference: str, width: float) -> None:
    pdf.set_xy(MARGIN_MM, MARGIN_MM)
    pdf.set_font(FONT_FAMILY, "B", 18)
    pdf.multi_cell(width, 9, title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, size=11)
    receipt_number = gettext("Receipt number %(reference)s", reference=reference)
    pdf.multi_cell(width, 6, receipt_number, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _details(pdf: FPDF, payment: Payment, payer_name: str | None, language: str, width: float) -> None:
    """Who was paid, by whom, when, how much and how: a two-column list beside the QR code."""
    agencies = list(dict.fromkeys(line.agency.name(language) for line in payment.lines))
    paid_at = payment.completed_at or payment.created_at
    details = [
        (gettext("Agency") if len(agencies) == 1 else gettext("Agencies"), "\n".join(agencies)),
        (gettext("Payer"), payer_name or "–"),
        (
            gettext("Date and time"),
            # The long format names the zone (EET, +0200): a receipt is read far from its agency.
            format_datetime(paid_at, "long", tzinfo=payment_timezone(payment), locale=language),
        ),
        (gettext("Amount paid"), format_money(payment.amount_minor, payment.currency, language)),
    ]
    if payment.card_last4:
        card = f"{(payment.card_brand or '').capitalize()} •••• {payment.card_last4}".strip()
        details.append((gettext("Card"), card))
    details.append((gettext("Payment provider reference"), payment.provider_reference or "–"))
    if payment.provider == "sandbox":
        details.append((gettext("Mode"), gettext("Test mode: no money moved")))

    pdf.set_font(FONT_FAMILY, size=10)
    with pdf.table(
        width=width,
        align="LEFT",
        col_widths=(2, 3),
        borders_layout="NONE",
        first_row_as_headings=False,
        text_align="LEFT",
        line_height=5,
        padding=(0.8, 1, 0.8, 0),
    ) as table:
        for label, value in details:
            row = table.row()
            row.cell(label, style=FontFace(emphasis="BOLD"))
            row.cell(value)
    # Below the QR code's caption even when the details are short.
    pdf.set_y(max(pdf.get_y(), MARGIN_MM + QR_SIZE_MM + 10) + 4)


def _lines(pdf: FPDF, payment: Payment, language: str) -> None:
    """The table of what was paid: principal, surcharge and total per line, then the total."""

    def money(amount_minor: int) -> str:
        return format_money(amount_minor, payment.currency, language)

    pdf.set_font(FONT_FAMILY, "B", 12)
    pdf.cell(0, 8, gettext("What was paid"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, size=9)
    with pdf.table(
        col_widths=(40, 56, 26, 26, 26),
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=FontFace(family=FONT_FAMILY, emphasis="BOLD", fill_color=(235, 235, 235)),
        line_height=5,
        padding=1.5,
    ) as table:
        header = table.row()
        for text in (gettext("Agency"), gettext("Debt"), gettext("Amount"), gettext("Surcharge"), gettext("Total")):
            header.cell(text)
        for line in payment.lines:
            description = line.title(language)
            if line.item is not None and line.quantity > 1:
                description += f" × {line.quantity}"
            if line.installment is not None:
                description += " – " + gettext("installment %(number)s", number=line.installment.number)
            row = table.row()
            row.cell(line.agency.name(language))
            row.cell(description)
            row.cell(money(line.principal_minor))
            row.cell(money(line.surcharge_minor))
            row.cell(money(line.amount_minor))
        bold = FontFace(emphasis="BOLD")
        total = table.row()
        total.cell(gettext("Total paid"), colspan=4, style=bold, align="RIGHT")
        total.cell(money(payment.amount_minor), style=bold)
