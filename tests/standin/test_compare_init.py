"""Unit tests of compare_init.py's parsing and statistics (run by tests/compare_init.rs)."""
import os
import sys
import unittest
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "compare-init"))
import compare_init  # noqa: E402


class Parsing(unittest.TestCase):
    def test_a_cold_report(self):
        tail = ("START RequestId: r Version: $LATEST\nEND RequestId: r\n"
                "REPORT RequestId: r\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
                "Max Memory Used: 41 MB\tInit Duration: 152.07 ms\t\n")
        s = compare_init.parse_report(tail)
        self.assertEqual((s["init_ms"], s["duration_ms"], s["billed_ms"], s["max_memory_mb"]), (152.07, 12.34, 13, 41))
        self.assertIsNone(s["restore_ms"])
        self.assertEqual(s["status"], "success")

    def test_snapstart_restore_and_a_timeout(self):
        tail = ("2026-12-01T10:00:03.000Z r Task timed out after 3.00 seconds\n"
                "REPORT RequestId: r\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 512 MB\t"
                "Max Memory Used: 90 MB\tRestore Duration: 301.50 ms\tBilled Restore Duration: 122 ms\tStatus: timeout\n"
                "[telemetry-relay] INFO shutdown summary: invokes=3 posts=4 events=20\n")
        s = compare_init.parse_report(tail)
        self.assertEqual((s["restore_ms"], s["init_ms"], s["status"]), (301.5, None, "timeout"))
        self.assertEqual(s["duration_ms"], 3000.0)
        self.assertEqual(s["relay_summary"], "invokes=3 posts=4 events=20")

    def test_a_warm_report_and_no_report(self):
        s = compare_init.parse_report("REPORT RequestId: r\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\n")
        self.assertIsNone(s["init_ms"])
        self.assertIsNone(compare_init.parse_report("START RequestId: r\n"))


class Statistics(unittest.TestCase):
    """Against values worked out by hand."""

    def test_nearest_rank_percentiles(self):
        self.assertEqual(compare_init.percentile([5, 1, 4, 2, 3], 90), 5)  # rank ceil(4.5) = 5
        self.assertEqual(compare_init.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9)  # rank 9
        self.assertEqual(compare_init.percentile([7], 90), 7)

    def test_the_difference_of_medians_and_its_interval(self):
        without = [1.0, 2.0, 3.0, 4.0, 5.0]          # median 3
        with_layer = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # median 4.5
        diff, low, high = compare_init.bootstrap_diff(without, with_layer)
        self.assertEqual(diff, 1.5)
        self.assertTrue(low <= 1.5 <= high, (low, high))
        # The interval cannot leave the range of possible differences (2 - 5 to 7 - 1).
        self.assertTrue(-3 <= low and high <= 6, (low, high))
        # Identical groups of one value: no spread at all.
        self.assertEqual(compare_init.bootstrap_diff([2.0, 2.0], [2.0, 2.0]), (0.0, 0.0, 0.0))

    def test_summary_per_variant(self):
        samples = [{"variant": "without", "init_ms": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
        samples += [{"variant": "with", "init_ms": v} for v in (2.0, 3.0, 4.0, 5.0, 6.0, 7.0)]
        rows, diff = compare_init.summarize(samples, "init_ms")
        self.assertEqual(rows["without"], {"n": 5, "median": 3.0, "p90": 5.0, "min": 1.0, "max": 5.0})
        self.assertEqual(rows["with"], {"n": 6, "median": 4.5, "p90": 7.0, "min": 2.0, "max": 7.0})
        self.assertEqual(diff[0], 1.5)

    def test_the_chart_is_valid_svg_with_a_point_per_sample(self):
        samples = [{"variant": "without", "init_ms": 150.0 + i} for i in range(4)]
        samples += [{"variant": "with", "init_ms": 152.0 + i} for i in range(3)]
        root = ElementTree.fromstring(compare_init.svg_strip_plot(samples))
        self.assertTrue(root.tag.endswith("svg"))
        circles = [e for e in root.iter() if e.tag.endswith("circle")]
        self.assertEqual(len(circles), 7)
        texts = " ".join(e.text or "" for e in root.iter() if e.tag.endswith("text"))
        self.assertIn("Init Duration (ms)", texts)
        self.assertIn("with the layer (n=3)", texts)


if __name__ == "__main__":
    unittest.main()
