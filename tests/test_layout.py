"""dataloader/layout.py's names on disk, shared by the readers and the writers."""
import os

from dataloader.layout import (folder_for_video, mmaction_frame_name, mmaction_video_dir, twostream_frame_name,
                               twostream_video_dirs, video_from_folder)


def test_frame_names_are_one_based_and_padded():
    assert twostream_frame_name(1) == "frame000001.jpg"
    assert [mmaction_frame_name(s, 12) for s in ("rgb", "u", "v")] == \
        ["img_00012.jpg", "flow_x_00012.jpg", "flow_y_00012.jpg"]


def test_video_folders():
    assert folder_for_video("Run_g01_c01", "ucf101") == "v_Run_g01_c01"
    assert folder_for_video("film01_run_clip01", "hmdb51") == "film01_run_clip01"
    for video, dataset in (("Run_g01_c01", "ucf101"), ("film01_run_clip01", "hmdb51")):
        assert video_from_folder(folder_for_video(video, dataset)) == video
    assert twostream_video_dirs("R", "F", "v_x") == (os.path.join("R", "v_x"), os.path.join("F", "u", "v_x"),
                                                      os.path.join("F", "v", "v_x"))
    assert mmaction_video_dir("M", "Run", "x") == os.path.join("M", "Run", "x")
