"""Tests of dataloader/splits.py on tiny hand-written split lists."""
import os

import pytest

from dataloader.splits import (SplitError, auto_val_groups, hold_out_films_per_class, hold_out_groups,
                               hold_out_validation, load_hmdb51_split, load_split, load_ucf101_split, video_group,
                               video_name)

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


# ------------------------------------------------------------------ --val-groups auto
@pytest.mark.parametrize("groups, held", [(18, 3), (17, 3), (20, 3), (25, 4), (10, 2), (30, 5), (7, 1), (5, 1),
                                          (4, 1), (3, 1), (2, 1), (1, 0), (0, 0)])
def test_auto_val_groups_is_15_percent_rounded_half_up_at_least_one(groups, held):
    assert auto_val_groups(groups) == held


def test_auto_hold_out_ucf101_split1_is_g23_to_g25(tmp_path):
    """UCF101 split 1 trains on g08..g25 (18 groups): auto holds out g23-g25, as the old default."""
    train = [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi {y + 1}" for g in range(8, 26) for y, c in enumerate(CLASSES)
             for k in (1, 2)]
    split = load_ucf101_split(ucf_dir(tmp_path, train=train), 1)
    h = hold_out_validation("ucf101", split.train, split.classes)
    assert {video_group(v) for v, _ in h.val} == {"g23", "g24", "g25"}
    assert {video_group(v) for v, _ in h.train} == {f"g{g:02d}" for g in range(8, 23)}
    assert "3 held-out actor groups" in h.description and "g23-g25" in h.description
    assert "auto" in h.description and "18 groups" in h.description
    explicit = hold_out_validation("ucf101", split.train, split.classes, 2)
    assert {video_group(v) for v, _ in explicit.val} == {"g24", "g25"} and "auto" not in explicit.description
    none = hold_out_validation("ucf101", split.train, split.classes, 0)
    assert none.val == [] and none.train == split.train and none.description == ""


def test_auto_hold_out_small_data_set_keeps_most_groups_to_train_on():
    entries = [(f"A_g{g:02d}_c01", 0) for g in range(8, 13)]  # 5 groups: the old 3 left only 2 to train on
    h = hold_out_validation("ucf101", entries, ["A"])
    assert [v for v, _ in h.val] == ["A_g12_c01"] and len(h.train) == 4
    assert "1 held-out actor group of" in h.description and ": g12;" in h.description
    one = hold_out_validation("ucf101", entries[:1], ["A"])  # one group: nothing to hold out
    assert one.val == [] and one.description == ""


def test_own_videos_without_actor_groups_validate_every_class():
    # Names from prepare_data --dataset folders: no _gNN_cNN, so no actor groups. Holding out
    # the names that sort last would validate on one class (Walk) only.
    classes = ["Jump", "Run", "Walk"]
    entries = [(f"{c}_clip_{i}", y) for y, c in enumerate(classes) for i in range(1, 8)]  # 7 a class
    h = hold_out_validation("ucf101", entries, classes)
    # auto, per class: videos from the last (by name) until 15% of 7 = 1.05 -> 2 videos each
    assert sorted(v for v, _ in h.val) == sorted(f"{c}_clip_{i}" for c in classes for i in (6, 7))
    assert sorted(h.train + h.val) == sorted(entries)
    assert "videos of each class held out: 6 of 21 training clips, 3 of 3 classes" in h.description
    one = hold_out_validation("ucf101", entries, classes, 1)
    assert sorted(v for v, _ in one.val) == ["Jump_clip_7", "Run_clip_7", "Walk_clip_7"]
    assert one.description.startswith("1 video of each class held out")
    # UCF101 names keep the actor-group rule.
    ucf = [(f"A_g{g:02d}_c01", 0) for g in range(8, 13)]
    assert "actor group" in hold_out_validation("ucf101", ucf, ["A"]).description


# HMDB51 lists in the real naming (<source film>_<class>_<tags>_<n>.avi), written by hand.
# brush_hair trains on 9 clips of 5 films, climb on 12 of 6, climb_stairs on 5 of 4, pour on 2
# of 1; Fellowship_5 gives clips to climb and climb_stairs.
HMDB_LISTS = {
    "brush_hair_test_split1.txt": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1", "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 1",
        "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 1", "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 1",
        "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi 2",
        "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_1.avi 2",
        "Brushing_my_waist_lenth_hair_brush_hair_u_nm_np1_ba_goo_0.avi 1",
        "Brushing_my_waist_lenth_hair_brush_hair_u_nm_np1_ba_goo_1.avi 1",
        "Silky_Straight_Hair_Original_brush_hair_h_nm_np1_ba_goo_0.avi 1",
        "atempting_to_brush_my_hair_brush_hair_u_nm_np2_le_goo_0.avi 0",
        "brushing_hair_2_brush_hair_h_nm_np2_ba_med_2.avi 1", "brushing_hair_2_brush_hair_h_nm_np2_ba_med_3.avi 1"],
    "climb_test_split1.txt": [
        "Chillin_at_the_Rock_Gym_climb_f_cm_np1_ba_med_0.avi 1", "Chillin_at_the_Rock_Gym_climb_f_cm_np1_ba_med_1.avi 1",
        "Chillin_at_the_Rock_Gym_climb_f_cm_np1_ba_med_2.avi 1", "Fellowship_5_climb_u_cm_np1_ba_bad_3.avi 1",
        "Rock_Climbing_Hanging_climb_f_cm_np1_fr_med_1.avi 1", "Rock_Climbing_Hanging_climb_f_cm_np1_fr_med_2.avi 1",
        "Rock_Climbing_Hanging_climb_f_cm_np1_fr_med_3.avi 2", "Sport_Climbing_climb_f_cm_np1_ri_bad_0.avi 1",
        "Sport_Climbing_climb_f_cm_np1_ri_bad_1.avi 1", "Sport_Climbing_climb_f_cm_np1_ri_bad_2.avi 1",
        "Sport_Climbing_climb_f_cm_np1_ri_bad_3.avi 1", "TheClimb_climb_f_cm_np1_le_med_4.avi 1",
        "Wall_Climbing_climb_f_cm_np1_ba_bad_0.avi 1"],
    "climb_stairs_test_split1.txt": [
        "American_History_X_climb_stairs_f_cm_np1_ba_med_3.avi 1", "BATMAN_BEGINS_climb_stairs_f_cm_np1_fr_med_7.avi 1",
        "BATMAN_BEGINS_climb_stairs_f_cm_np1_fr_med_8.avi 2", "Fellowship_5_climb_stairs_f_cm_np1_ba_med_0.avi 1",
        "Fellowship_5_climb_stairs_f_cm_np1_ba_med_1.avi 1", "Spiderman3_climb_stairs_f_cm_np1_le_med_2.avi 1"],
    "pour_test_split1.txt": [
        "Bartender_School_pour_u_cm_np1_fr_goo_0.avi 1", "Bartender_School_pour_u_cm_np1_fr_goo_1.avi 1",
        "Bartender_School_pour_u_cm_np1_fr_goo_2.avi 2"],
}


def test_hmdb51_validation_is_drawn_per_class_by_whole_films(tmp_path):
    split = load_hmdb51_split(hmdb_dir(tmp_path, HMDB_LISTS), 1)
    assert split.classes == ["brush_hair", "climb", "climb_stairs", "pour"]
    h = hold_out_validation("hmdb51", split.train, split.classes)
    # Per class, films from the last (sorted by name) until 15% of the class's clips:
    # brush_hair 15% of 9 = 1.35 -> brushing_hair_2 (2 clips); climb 15% of 12 = 1.8 ->
    # Wall_Climbing (1), then TheClimb (1); climb_stairs 15% of 5 = 0.75 -> Spiderman3 (1);
    # pour has one film, which stays in training.
    assert sorted(v for v, _ in h.val) == sorted([
        "brushing_hair_2_brush_hair_h_nm_np2_ba_med_2", "brushing_hair_2_brush_hair_h_nm_np2_ba_med_3",
        "Wall_Climbing_climb_f_cm_np1_ba_bad_0", "TheClimb_climb_f_cm_np1_le_med_4",
        "Spiderman3_climb_stairs_f_cm_np1_le_med_2"])
    assert sorted(h.train + h.val) == sorted(split.train)
    for y, c in enumerate(split.classes):  # no film on both sides within a class
        films = lambda es: {video_group(v, c) for v, label in es if label == y}  # noqa: E731
        assert not films(h.train) & films(h.val)
        assert films(h.train), f"class {c} lost all its training films"
    assert {y for _, y in h.val} == {0, 1, 2}
    assert "5 of 28 training clips" in h.description and "3 of 4 classes" in h.description
    # Fellowship_5 has clips in two classes; per class it stays whole (here: training in both)
    assert ("Fellowship_5_climb_u_cm_np1_ba_bad_3", 1) in h.train
    # The old rule (the 3 films that sort last over the whole list) covers only 2 of the 4 classes.
    _, old = hold_out_groups(split.train, split.classes, 3)
    assert {y for _, y in old} == {0, 1}


def test_hmdb51_explicit_films_per_class_and_a_class_with_one_film(tmp_path):
    split = load_hmdb51_split(hmdb_dir(tmp_path, HMDB_LISTS), 1)
    with pytest.raises(SplitError, match="'pour'"):
        hold_out_validation("hmdb51", split.train, split.classes, 1)  # pour's only film
    without_pour = [(v, y) for v, y in split.train if y != 3]
    h = hold_out_validation("hmdb51", without_pour, split.classes, 1)
    assert sorted(v for v, _ in h.val) == sorted([
        "brushing_hair_2_brush_hair_h_nm_np2_ba_med_2", "brushing_hair_2_brush_hair_h_nm_np2_ba_med_3",
        "Wall_Climbing_climb_f_cm_np1_ba_bad_0", "Spiderman3_climb_stairs_f_cm_np1_le_med_2"])
    assert h.description.startswith("1 source film of each class")
    assert hold_out_films_per_class(split.train, split.classes, 0) == (split.train, [])
