"""The tiles, the comparison and exploration tables, the alert panel, the 3D labels and the video
overlay format with twin.core.formats (a KPI used to read 150.3 on a tile and 150 in the video)."""


def test_the_app_formats_numbers_and_times_one_way():
    from app import alert_panel, compare_view, exploration_view, panels
    from twin.view import render, video
    from twin.core.formats import fmt_clock, fmt_number, time_label

    assert panels.fmt_value is video.fmt_value is compare_view.fmt_value is render.fmt_number is fmt_number
    assert alert_panel.fmt is fmt_number
    assert exploration_view.fmt_number is fmt_number  # the robustness table read 74.45 beside 245.5
    assert [exploration_view._cell("mean", v) for v in (74.45, 245.5, float("nan"))] == ["74.5", "246", "–"]
    assert exploration_view._cell("share_meeting_target", 0.25) == "25%"
    assert exploration_view._cell("intervention", "fast") == "fast"
    assert panels.fmt_clock is alert_panel.fmt_clock is compare_view.fmt_clock is fmt_clock
    assert panels.time_label is video.time_label is time_label
    assert panels.fmt_value(150.3) == video.fmt_value(150.3) == "150"
