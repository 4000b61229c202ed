import csv
import io

from facebatch.detect import Face
from facebatch.report import HEADER, Summary, rows_for, safe_cell
from facebatch.results import LabelledFace, ImageResult, UNKNOWN


def test_header_is_exactly_the_documented_one():
    assert ",".join(HEADER) == "image,face,name,distance,confidence,left,top,right,bottom,status,error,annotated"


def test_one_row_per_face_numbered_left_to_right():
    faces = (LabelledFace(Face(10, 20, 50, 70, 0.99), "ada", 0.5), LabelledFace(Face(80, 5, 120, 60, 0.9), UNKNOWN, 1.3))
    rows = rows_for(ImageResult("a/b.jpg", "ok", faces, annotated="a/b.jpg"))
    assert rows == [
        ["a/b.jpg", "0", "ada", "0.5000", "0.9900", "10", "20", "50", "70", "ok", "", "a/b.jpg"],
        ["a/b.jpg", "1", UNKNOWN, "1.3000", "0.9000", "80", "5", "120", "60", "ok", "", "a/b.jpg"],
    ]


def test_no_face_and_error_rows():
    assert rows_for(ImageResult("x.png", "no_face", annotated="x.png"))[0][9:] == ["no_face", "", "x.png"]
    error = rows_for(ImageResult("y.jpg", "error", error="cannot decode\nimage"))[0]
    assert error[9:] == ["error", "cannot decode image", ""]


def test_formula_cells_are_neutralised_and_csv_stays_valid():
    for dangerous in ("=cmd()", "+1", "-1", "@SUM(A1)"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("plain") == "plain"
    buffer = io.StringIO()
    name = 'we,ird "name"\nline.jpg'
    csv.writer(buffer).writerows(rows_for(ImageResult("=" + name, "no_face")))
    parsed = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert parsed[0][0] == "'=" + name


def test_summary_counts():
    summary = Summary()
    summary.add_rows(rows_for(ImageResult("a", "ok", (LabelledFace(Face(0, 0, 1, 1, 1), "ada", 0.1),
                                                      LabelledFace(Face(0, 0, 1, 1, 1), UNKNOWN, 1.9)))))
    summary.add_rows(rows_for(ImageResult("b", "error", error="bad")))
    summary.add_rows(rows_for(ImageResult("c", "no_face")))
    assert (summary.images, summary.faces, summary.known, summary.unknown, summary.errors, summary.no_face) == (3, 2, 1, 1, 1, 1)


def test_a_carriage_return_in_a_file_name_stays_inside_its_cell():
    import csv
    import io

    from facebatch.report import CsvRows

    rows = [["plain.jpg", "0", "ada"], ["cr\rx.jpg", "0", "bob"], ["nl\nx.jpg", "1", "UNKNOWN"]]
    buffer = io.StringIO(newline="")
    CsvRows(buffer).writerows(rows)
    text = buffer.getvalue()
    assert text.startswith("plain.jpg,0,ada\n")  # rows without one are written as before
    assert list(csv.reader(io.StringIO(text, newline=""))) == rows


def test_tab_and_carriage_return_prefixes_are_neutralised_too():
    # OWASP lists both: a spreadsheet may strip them and run the formula behind
    assert safe_cell("\t=cmd()") == "'\t=cmd()"
    assert safe_cell("\r=cmd()") == "'\r=cmd()"


def test_name_error_and_annotated_cells_are_formula_safe():
    formula = '=HYPERLINK("http://x","y")'
    face = LabelledFace(Face(0, 0, 10, 10, 0.9), formula, 0.5)
    row = rows_for(ImageResult("a.jpg", "ok", (face,), annotated="@a.jpg"))[0]
    assert (row[2], row[11]) == ("'" + formula, "'@a.jpg")
    error = rows_for(ImageResult("b.jpg", "error", error="+bad", annotated="-b.jpg"))[0]
    assert (error[10], error[11]) == ("'+bad", "'-b.jpg")


def test_an_infinite_distance_is_an_empty_cell():
    # UNKNOWN with nobody enrolled: no distance to show, and "inf" is no number a spreadsheet reads
    face = LabelledFace(Face(0, 0, 10, 10, 0.9), UNKNOWN, float("inf"))
    assert rows_for(ImageResult("a.jpg", "ok", (face,)))[0][3] == ""
