"""Tests of dataloader/splits.py on tiny hand-written split lists."""
import os

import pytest

from dataloader.splits import (SplitError, hold_out_groups, load_hmdb51_split, load_split,
                               load_ucf101_split, video_group, video_name)

CLASSES = ["ApplyEyeMakeup", "Archery", "HandstandPushups"]


def write(path, lines, eol="\r\n"):
    with open(path, "w", newline="") as f:
        f.write("".join(line + eol for line in lines))
    return str(path)


def ucf_dir(tmp_path, train=None, test=None, classind=None, split=1, eol="\r\n"):
    """A UCF101-style split folder; defaults are a small valid split with CRLF endings."""
    d = tmp_path / "ucfTrainTestlist"
    d.mkdir(exist_ok=True)
    if classind is None:
        classind = [f"{i + 1} {c}" for i, c in enumerate(CLASSES)]
    if train is None:
        train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
                 "Archery/v_Archery_g09_c02.avi 2",
                 "HandstandPushups/v_HandStandPushups_g10_c03.avi 3"]
    if test is None:
        test = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                "HandstandPushups/v_HandStandPushups_g02_c01.avi",
                "Archery/v_Archery_g03_c04.avi"]
    write(d / "classInd.txt", classind, eol)
    write(d / f"trainlist0{split}.txt", train, eol)
    write(d / f"testlist0{split}.txt", test, eol)
    return str(d)


# ------------------------------------------------------------------ names and groups
def test_video_name_strips_folder_prefix_and_extension():
    assert video_name("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi") == "ApplyEyeMakeup_g08_c01"
    assert video_name("ApplyEyeMakeup\\v_ApplyEyeMakeup_g08_c01.avi") == "ApplyEyeMakeup_g08_c01"
    assert video_name("April_09_brush_hair_u_nm_np1_ba_goo_0.avi") == "April_09_brush_hair_u_nm_np1_ba_goo_0"


def test_video_group_ucf_and_hmdb():
    assert video_group("ApplyEyeMakeup_g08_c01") == "g08"
    assert video_group("April_09_brush_hair_u_nm_np1_ba_goo_0", "brush_hair") == "April_09"


# ------------------------------------------------------------------ UCF101
def test_ucf101_parses_labels_and_test_labels_from_folder(tmp_path):
    s = load_ucf101_split(ucf_dir(tmp_path), 1)
    assert s.classes == CLASSES  # no CR left on the last name
    assert s.train == [("ApplyEyeMakeup_g08_c01", 0), ("Archery_g09_c02", 1),
                       ("HandStandPushups_g10_c03", 2)]
    # Test lines have no label: it comes from the class folder, matched case-insensitively
    assert s.test == [("ApplyEyeMakeup_g01_c01", 0), ("HandStandPushups_g02_c01", 2),
                      ("Archery_g03_c04", 1)]
    for name, _ in s.train + s.test:
        assert "\r" not in name


def test_ucf101_lf_endings_and_trailing_blank_lines(tmp_path):
    d = ucf_dir(tmp_path, eol="\n")
    with open(os.path.join(d, "trainlist01.txt"), "a") as f:
        f.write("\n\n")
    s = load_ucf101_split(d, 1)
    assert [y for _, y in s.train] == [0, 1, 2]


def test_ucf101_test_line_without_folder_uses_file_name_spelling(tmp_path):
    d = ucf_dir(tmp_path, test=["v_HandStandPushups_g01_c02.avi", "v_Archery_g01_c01.avi"])
    s = load_ucf101_split(d, 1)
    assert s.test == [("HandStandPushups_g01_c02", 2), ("Archery_g01_c01", 1)]


def test_ucf101_other_split_numbers(tmp_path):
    d = ucf_dir(tmp_path, split=3)
    assert len(load_ucf101_split(d, 3).train) == 3
    with pytest.raises(SplitError):
        load_ucf101_split(d, 4)
    with pytest.raises(SplitError, match="trainlist01"):
        load_ucf101_split(d, 1)  # lists of split 1 are not there


def _expect_error(d, fname, line, *words):
    with pytest.raises(SplitError) as e:
        load_ucf101_split(d, 1)
    msg = str(e.value)
    assert os.path.join(d, fname) in msg
    if line is not None:
        assert f"{fname}:{line}" in msg
    for w in words:
        assert w in msg
    return msg


def test_ucf101_bad_label_names_file_and_line(tmp_path):
    train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "Archery/v_Archery_g09_c02.avi two"]
    _expect_error(ucf_dir(tmp_path, train=train), "trainlist01.txt", 2, "two")


@pytest.mark.parametrize("label", ["0", "4", "-1"])
def test_ucf101_out_of_range_label(tmp_path, label):
    train = [f"Archery/v_Archery_g09_c02.avi {label}"]
    _expect_error(ucf_dir(tmp_path, train=train), "trainlist01.txt", 1)


def test_ucf101_train_line_without_label_is_an_error(tmp_path):
    train = ["Archery/v_Archery_g09_c02.avi 2", "Archery/v_Archery_g09_c03.avi"]
    _expect_error(ucf_dir(tmp_path, train=train), "trainlist01.txt", 2)


def test_ucf101_label_disagreeing_with_folder(tmp_path):
    train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
             "Archery/v_Archery_g09_c02.avi 2",
             "Archery/v_Archery_g09_c03.avi 1"]
    _expect_error(ucf_dir(tmp_path, train=train), "trainlist01.txt", 3, "Archery")


def test_ucf101_unknown_class(tmp_path):
    test = ["Archery/v_Archery_g01_c01.avi", "Juggling/v_Juggling_g01_c01.avi"]
    _expect_error(ucf_dir(tmp_path, test=test), "testlist01.txt", 2, "Juggling")


def test_ucf101_duplicate_video_names_file_line_and_video(tmp_path):
    test = ["Archery/v_Archery_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
            "Archery/v_Archery_g01_c01.avi"]
    # The second occurrence (line 3) is the offending line.
    _expect_error(ucf_dir(tmp_path, test=test), "testlist01.txt", 3, "Archery_g01_c01")


def test_ucf101_empty_file(tmp_path):
    d = ucf_dir(tmp_path)
    write(os.path.join(d, "testlist01.txt"), [])
    _expect_error(d, "testlist01.txt", None, "empty")
    write(os.path.join(d, "testlist01.txt"), ["", "  "])  # only blank lines
    _expect_error(d, "testlist01.txt", None, "empty")


def test_ucf101_missing_files(tmp_path):
    d = ucf_dir(tmp_path)
    os.remove(os.path.join(d, "classInd.txt"))
    _expect_error(d, "classInd.txt", None)
    d = ucf_dir(tmp_path)
    os.remove(os.path.join(d, "testlist01.txt"))
    _expect_error(d, "testlist01.txt", None)


def test_ucf101_malformed_classind(tmp_path):
    d = ucf_dir(tmp_path, classind=["1 ApplyEyeMakeup", "3 Archery"])
    _expect_error(d, "classInd.txt", 2)


# ------------------------------------------------------------------ HMDB51
def hmdb_dir(tmp_path, files):
    d = tmp_path / "testTrainMulti_7030_splits"
    d.mkdir(exist_ok=True)
    for name, lines in files.items():
        write(d / name, lines)
    return str(d)


def test_hmdb51_ids_and_class_order(tmp_path):
    d = hmdb_dir(tmp_path, {
        # written in non-sorted order on purpose
        "wave_test_split1.txt": ["Wave_A_wave_u_cm_np1_fr_med_0.avi 1", "Wave_B_wave_u_cm_np1_fr_med_1.avi 2",
                                 "Wave_C_wave_u_cm_np1_fr_med_2.avi 0"],
        "brush_hair_test_split1.txt": ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2",
                                       "Blonde_brush_hair_f_nm_np1_ba_goo_1.avi 1"],
        "cartwheel_test_split1.txt": ["Cart_cartwheel_f_cm_np1_le_med_0.avi 1"],
        "cartwheel_test_split2.txt": ["Other_cartwheel_f_cm_np1_le_med_0.avi 2"],
    })
    s = load_hmdb51_split(d, 1)
    assert s.classes == ["brush_hair", "cartwheel", "wave"]
    assert sorted(s.train) == sorted([("Blonde_brush_hair_f_nm_np1_ba_goo_1", 0),
                                      ("Cart_cartwheel_f_cm_np1_le_med_0", 1),
                                      ("Wave_A_wave_u_cm_np1_fr_med_0", 2)])
    assert s.test == [("April_09_brush_hair_u_nm_np1_ba_goo_0", 0), ("Wave_B_wave_u_cm_np1_fr_med_1", 2)]
    s2 = load_split("hmdb51", d, 2)
    assert s2.classes == ["cartwheel"] and s2.train == [] and s2.test == [("Other_cartwheel_f_cm_np1_le_med_0", 0)]


def test_hmdb51_bad_id_names_file_and_line(tmp_path):
    d = hmdb_dir(tmp_path, {"wave_test_split1.txt": ["a_wave_0.avi 1", "b_wave_1.avi 3"]})
    with pytest.raises(SplitError) as e:
        load_hmdb51_split(d, 1)
    assert os.path.join(d, "wave_test_split1.txt") + ":2" in str(e.value)


def test_hmdb51_no_lists_and_missing_folder(tmp_path):
    d = hmdb_dir(tmp_path, {"wave_test_split2.txt": ["a_wave_0.avi 1"]})
    with pytest.raises(SplitError, match="split1"):
        load_hmdb51_split(d, 1)
    with pytest.raises(SplitError, match="nowhere"):
        load_hmdb51_split(str(tmp_path / "nowhere"), 1)


def test_load_split_dispatch_and_unknown_dataset(tmp_path):
    s = load_split("ucf101", ucf_dir(tmp_path), 1)
    assert s.classes == CLASSES
    with pytest.raises(SplitError, match="kinetics"):
        load_split("kinetics", str(tmp_path), 1)


# ------------------------------------------------------------------ hold-out groups
def test_hold_out_groups_last_groups_whole():
    classes = ["A", "B"]
    entries = [(f"{c}_g{g:02d}_c{k:02d}", y) for g in range(8, 14) for y, c in enumerate(classes)
               for k in (1, 2)]
    train, val = hold_out_groups(entries, classes, 2)
    groups = lambda es: {v.split("_")[1] for v, _ in es}  # noqa: E731
    assert groups(val) == {"g12", "g13"}
    assert groups(train) == {"g08", "g09", "g10", "g11"}
    assert not groups(train) & groups(val)
    assert sorted(train + val) == sorted(entries)
    assert len(val) == 2 * 2 * 2


def test_hold_out_groups_zero_and_too_many():
    entries = [("A_g01_c01", 0), ("A_g02_c01", 0), ("A_g03_c01", 0)]
    assert hold_out_groups(entries, ["A"], 0) == (entries, [])
    for n in (3, 4):
        with pytest.raises(SplitError, match="3 groups"):
            hold_out_groups(entries, ["A"], n)
    train, val = hold_out_groups(entries, ["A"], 2)
    assert train == [("A_g01_c01", 0)] and val == [("A_g02_c01", 0), ("A_g03_c01", 0)]


def test_hold_out_groups_hmdb_source_film():
    classes = ["brush_hair", "wave"]
    entries = [("Amelie_brush_hair_f_nm_np1_ba_goo_0", 0), ("Amelie_wave_u_cm_np1_fr_med_0", 1),
               ("Zorro_brush_hair_f_nm_np1_ba_goo_0", 0), ("Zorro_wave_u_cm_np1_fr_med_1", 1),
               ("Bob_wave_u_cm_np1_fr_med_0", 1)]
    train, val = hold_out_groups(entries, classes, 1)
    assert sorted(v for v, _ in val) == ["Zorro_brush_hair_f_nm_np1_ba_goo_0", "Zorro_wave_u_cm_np1_fr_med_1"]
    assert len(train) == 3


def test_hmdb51_duplicate_video_names_its_file(tmp_path):
    d = hmdb_dir(tmp_path, {"brush_hair_test_split1.txt": ["x_brush_hair_0.avi 1"],
                            "wave_test_split1.txt": ["a_wave_0.avi 1", "b_wave_1.avi 2", "a_wave_0.avi 2"]})
    with pytest.raises(SplitError) as e:
        load_hmdb51_split(d, 1)
    assert "a_wave_0" in str(e.value)
    assert os.path.join(d, "wave_test_split1.txt") in str(e.value)
