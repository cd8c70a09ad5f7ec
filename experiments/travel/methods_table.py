"""experiments/travel/results/methods.txt (grid.sh's output) as the Markdown table of docs/travel.md."""
from pathlib import Path

ORDER = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]


def methods_table(text: str) -> str:
    lines = ["| method | mean UAR | RAVDESS | ASED | Indian | SAVEE | TurEV-DB | Urdu |",
             "|---|---|---|---|---|---|---|---|"]
    for block in text.split("== ")[1:]:
        rows = block.splitlines()
        name = rows[0].split(" | ")[0]
        uar = {r.split()[0]: r.split()[1] for r in rows if r.split() and r.split()[0] in ORDER}
        mean = next(r.split()[2] for r in rows if r.startswith("MEAN"))  # StopIteration: an unfinished run
        lines.append(f"| {name} | **{mean}** | " + " | ".join(uar[c] for c in ORDER) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(methods_table((Path(__file__).parent / "results" / "methods.txt").read_text()))
