//! How a text field's edit is written into its Automerge text: as the replacements a person
//! made, found by a diff of bounded cost.
//!
//! Automerge's own `update_text` diffs the whole text character by character (Myers, without a
//! bound on the work) and writes each difference as a splice: a long note rewritten or put in
//! capitals took minutes to save on a phone, holding the store meanwhile. Here the common start
//! and end are set aside first; what lies between is compared word by word (a word is a run of
//! letters and digits, any other character a word of its own), at most `MAX_WORD_EDITS` words
//! of edit; each short difference is then narrowed to the characters that differ. A person's
//! edits (typos fixed, a sentence rewritten, a paragraph added) are written where they were
//! made, each on its own, so that another device's concurrent edits elsewhere in the text merge
//! as before and a fixed letter costs a letter's operations. Past the bound (a text rewritten,
//! put in capitals) what lies between is one replacement.

use std::ops::Range;

/// The most words deleted plus inserted the diff looks for before it writes what lies between
/// the common start and end as one replacement. The diff keeps about the square of this in
/// positions (4 bytes each) while it runs: 4 MB at most, on a cheap phone.
const MAX_WORD_EDITS: usize = 1_000;

/// The most comparisons the diff makes (its work grows with the text's length times the edit).
const MAX_STEPS: usize = 10_000_000;

/// A difference of at most this many characters (deleted plus inserted) is narrowed to the
/// characters that differ ("Kouame" → "Kouamé" writes one letter, not the word).
const NARROW_UNDER: usize = 256;

/// A run narrowed to more replacements than this (or keeping less than half of its letters) is
/// a rewrite, not a few letters fixed: it is written as one. A sentence retyped shares scattered letters with the old one, and each
/// phone that retyped it kept a different scatter, which the merge interleaved into no one's
/// words ("MSeethe aysshe csoppdinrying").
const MAX_NARROWED: usize = 3;

/// Runs of differing words this few characters apart are narrowed as one.
const JOIN_UNDER: usize = 2;

/// The most replacements an edit is written as; beyond, the span from the first to the last is
/// one replacement.
const MAX_HUNKS: usize = 200;

/// `old[start..start + deleted]` (in characters) replaced by `inserted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hunk {
    pub start: usize,
    pub deleted: usize,
    pub inserted: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Equal,
    Delete,
    Insert,
}

/// The replacements that turn `old` into `new`, in order, none overlapping.
pub(crate) fn hunks(old: &[char], new: &[char]) -> Vec<Hunk> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (a, b) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    if a.is_empty() && b.is_empty() {
        return Vec::new();
    }
    let whole = || {
        vec![Hunk {
            start: prefix,
            deleted: a.len(),
            inserted: b.iter().collect(),
        }]
    };
    if a.is_empty() || b.is_empty() {
        return whole();
    }
    let (words_a, words_b) = (words(a), words(b));
    let Some(steps) = edit_steps(&words_a, &words_b, MAX_WORD_EDITS) else {
        return whole();
    };
    // Retyped rather than edited (most of its words gone): one replacement, so that two
    // phones' retypings merge as two texts side by side, each whole, rather than each new
    // text's words threaded between the few old words the other kept or deleted.
    if retyped(&steps, &words_a) {
        return whole();
    }
    // The runs of words that differ, in characters of `a` and `b`: (from_a, to_a, from_b, to_b).
    let chars_before = |words: &[&[char]]| -> Vec<usize> {
        std::iter::once(0)
            .chain(words.iter().scan(0, |at, w| {
                *at += w.len();
                Some(*at)
            }))
            .collect()
    };
    let (in_a, in_b) = (chars_before(&words_a), chars_before(&words_b));
    let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (x, y) in differing(&steps) {
        let (from_a, to_a) = (in_a[x.start], in_a[x.end]);
        let (from_b, to_b) = (in_b[y.start], in_b[y.end]);
        match runs.last_mut() {
            // Apart by a space or a mark only (a word joined to the next, a letter moved
            // across a space): one run, which the narrowing below sees whole.
            Some(last) if from_a - last.1 <= JOIN_UNDER => {
                last.1 = to_a;
                last.3 = to_b;
            }
            _ => runs.push((from_a, to_a, from_b, to_b)),
        }
    }
    let mut found: Vec<Hunk> = Vec::new();
    for (from_a, to_a, from_b, to_b) in runs {
        let (gone, came) = (&a[from_a..to_a], &b[from_b..to_b]);
        let narrowed = (gone.len() + came.len() <= NARROW_UNDER)
            .then(|| edit_steps(gone, came, NARROW_UNDER))
            .flatten()
            .filter(|steps| {
                // Most of it kept: letters fixed, not words retyped around a shared letter.
                let kept = steps.iter().filter(|s| **s == Step::Equal).count();
                kept * 2 >= gone.len().max(came.len())
            })
            .map(|steps| char_hunks(&steps, came, prefix + from_a))
            .filter(|letters| letters.len() <= MAX_NARROWED);
        match narrowed {
            Some(letters) => found.extend(letters),
            None => found.push(Hunk {
                start: prefix + from_a,
                deleted: gone.len(),
                inserted: came.iter().collect(),
            }),
        }
    }
    if found.len() > MAX_HUNKS {
        let (first, last) = (&found[0], &found[found.len() - 1]);
        let (start, end) = (first.start, last.start + last.deleted);
        // What the span becomes: the new text between the same unchanged characters.
        let end_in_new = new.len() - (old.len() - end);
        return vec![Hunk {
            start,
            deleted: end - start,
            inserted: new[start..end_in_new].iter().collect(),
        }];
    }
    found
}

/// Whether an edit keeps less than two thirds of the old text's words (letters and digits;
/// spaces and marks are no sign of an edit kept).
fn retyped(steps: &[Step], old_words: &[&[char]]) -> bool {
    let is_word = |w: &[char]| w.first().is_some_and(|c| c.is_alphanumeric());
    let (mut kept, mut at) = (0, 0);
    for step in steps {
        match step {
            Step::Equal => {
                kept += usize::from(is_word(old_words[at]));
                at += 1;
            }
            Step::Delete => at += 1,
            Step::Insert => {}
        }
    }
    let old = old_words.iter().filter(|w| is_word(w)).count();
    kept * 3 < old * 2
}

/// A text's words: each run of letters and digits, and each other character on its own.
fn words(text: &[char]) -> Vec<&[char]> {
    let mut found = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start + 1;
        if text[start].is_alphanumeric() {
            while end < text.len() && text[end].is_alphanumeric() {
                end += 1;
            }
        }
        found.push(&text[start..end]);
        start = end;
    }
    found
}

/// The runs an edit script changes: for each, the items of the old and of the new sequence
/// it spans.
fn differing(steps: &[Step]) -> Vec<(Range<usize>, Range<usize>)> {
    let mut found = Vec::new();
    let (mut x, mut y) = (0, 0);
    let mut i = 0;
    while i < steps.len() {
        if steps[i] == Step::Equal {
            x += 1;
            y += 1;
            i += 1;
            continue;
        }
        let (from_x, from_y) = (x, y);
        while i < steps.len() && steps[i] != Step::Equal {
            match steps[i] {
                Step::Delete => x += 1,
                _ => y += 1,
            }
            i += 1;
        }
        found.push((from_x..x, from_y..y));
    }
    found
}

/// The replacements a character-level edit script makes, `new` being what it turns into and
/// `start` where its old text begins.
fn char_hunks(steps: &[Step], new: &[char], start: usize) -> Vec<Hunk> {
    differing(steps)
        .into_iter()
        .map(|(x, y)| Hunk {
            start: start + x.start,
            deleted: x.len(),
            inserted: new[y].iter().collect(),
        })
        .collect()
}

/// The shortest edit from `a` to `b` (Myers' greedy algorithm), one step per item, or `None`
/// when it is longer than `max_edits` or costs more than `MAX_STEPS`.
fn edit_steps<T: PartialEq>(a: &[T], b: &[T], max_edits: usize) -> Option<Vec<Step>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = max_edits.min(a.len() + b.len()) as isize;
    let offset = max_d + 1;
    let at = |k: isize| (k + offset) as usize;
    let mut v = vec![0isize; 2 * max_d as usize + 3];
    // The furthest reach of each diagonal before each round, to walk the path back.
    let mut trace: Vec<Vec<u32>> = Vec::new();
    let mut work = 0usize;
    for d in 0..=max_d {
        // Reaches are positions in `a`, never negative.
        trace.push(v[at(-d)..=at(d)].iter().map(|&x| x as u32).collect());
        let mut k = -d;
        while k <= d {
            let mut x = if k == -d || (k != d && v[at(k - 1)] < v[at(k + 1)]) {
                v[at(k + 1)]
            } else {
                v[at(k - 1)] + 1
            };
            let mut y = x - k;
            let from = x;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            work += 1 + (x - from) as usize;
            v[at(k)] = x;
            if x >= n && y >= m {
                return Some(walk_back(&trace, a.len(), b.len()));
            }
            k += 2;
        }
        if work > MAX_STEPS {
            return None;
        }
    }
    None
}

/// The steps of the path `edit_steps` found, from its trace (`trace[d]` holds diagonals `-d..=d`
/// as they were before round `d`).
fn walk_back(trace: &[Vec<u32>], n: usize, m: usize) -> Vec<Step> {
    let reach = |d: isize, k: isize| trace[d as usize][(k + d) as usize] as isize;
    let mut steps = Vec::with_capacity(n + m);
    let (mut x, mut y) = (n as isize, m as isize);
    for d in (1..trace.len() as isize).rev() {
        let k = x - y;
        // Round d started from diagonal k + 1 (an insertion) or k - 1 (a deletion).
        let prev_k = if k == -d || (k != d && reach(d, k - 1) < reach(d, k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = reach(d, prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            steps.push(Step::Equal);
            x -= 1;
            y -= 1;
        }
        if x == prev_x {
            steps.push(Step::Insert);
            y -= 1;
        } else {
            steps.push(Step::Delete);
            x -= 1;
        }
    }
    while x > 0 && y > 0 {
        steps.push(Step::Equal);
        x -= 1;
        y -= 1;
    }
    steps.reverse();
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(old: &str, hunks: &[Hunk]) -> String {
        let mut chars: Vec<char> = old.chars().collect();
        for h in hunks.iter().rev() {
            chars.splice(h.start..h.start + h.deleted, h.inserted.chars());
        }
        chars.into_iter().collect()
    }

    fn check(old: &str, new: &str) -> Vec<Hunk> {
        let (a, b): (Vec<char>, Vec<char>) = (old.chars().collect(), new.chars().collect());
        let found = hunks(&a, &b);
        assert_eq!(apply(old, &found), new, "{old:?} → {new:?}: {found:?}");
        for pair in found.windows(2) {
            assert!(
                pair[0].start + pair[0].deleted <= pair[1].start,
                "{found:?}"
            );
        }
        assert!(found.len() <= MAX_HUNKS);
        found
    }

    /// A small generator, so that the cases are the same at every run.
    fn text(seed: &mut u64, len: usize, alphabet: &[char]) -> String {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                alphabet[(*seed >> 33) as usize % alphabet.len()]
            })
            .collect()
    }

    #[test]
    fn the_replacements_turn_the_old_text_into_the_new() {
        for (old, new) in [
            ("", ""),
            ("", "Vue au marché"),
            ("Vue au marché", ""),
            ("Vue au marché", "Vue au marché"),
            ("Vue au marché", "Vue au grand marché"),
            ("Vue au marché le samedi", "Vue le samedi"),
            ("Kɔfi Bœuf 🌱", "Kofi Boeuf 🌱🌱"),
            ("e\u{301}cole", "e\u{300}cole"),
            ("abc", "xyz"),
        ] {
            check(old, new);
        }
        let mut seed = 11;
        for alphabet in [&['a', 'b'][..], &['é', 'x', '🌱', ' ', 'ɔ'][..]] {
            for _ in 0..300 {
                let (l1, l2) = ((seed % 40) as usize, ((seed >> 8) % 40) as usize);
                let old = text(&mut seed, l1, alphabet);
                let new = text(&mut seed, l2, alphabet);
                check(&old, &new);
            }
        }
    }

    #[test]
    fn a_persons_edits_stay_apart_where_they_were_made() {
        let mut seed = 5;
        // Words of a few letters, as in a note.
        let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyz     ".chars().collect();
        let old = text(&mut seed, 4_000, &letters);
        // A word fixed near the start and a sentence added near the end: two replacements,
        // each where the person typed.
        let mut new: Vec<char> = old.chars().collect();
        new.splice(100..104, "fixé".chars());
        new.splice(3_500..3_500, " Revue le lundi.".chars());
        let new: String = new.into_iter().collect();
        let found = check(&old, &new);
        let (last, word) = found.split_last().expect("replacements");
        assert!(
            !word.is_empty()
                && word
                    .iter()
                    .all(|h| h.start >= 100 && h.start + h.deleted <= 104),
            "{found:?}"
        );
        assert_eq!((last.start, last.deleted), (3_500, 0), "{found:?}");
        // A rewrite of it all, or the same text in capitals: written within `MAX_HUNKS`
        // replacements (`check` asserts it), what both share kept.
        check(&old, &text(&mut seed, 4_000, &letters));
        check(&old, &old.to_uppercase());
        let far: Vec<char> = "xyz".chars().collect();
        assert_eq!(check(&old, &text(&mut seed, 4_000, &far)).len(), 1);
        // Proofreading: forty letters fixed across the text, each written as its letter, where
        // it was (another device's edit between two of them merges in its place).
        let mut fixed: Vec<char> = old.chars().collect();
        // Letters only: a space made a letter joins two words, which is another edit.
        let places: Vec<usize> = (0..40)
            .map(|i| 50 + i * 97)
            .map(|i| (i..).find(|&j| fixed[j] != ' ').unwrap())
            .collect();
        for &i in &places {
            fixed[i] = if fixed[i] == 'é' { 'e' } else { 'é' };
        }
        let fixed: String = fixed.into_iter().collect();
        let found = check(&old, &fixed);
        // Each where it was made, a letter's worth (a letter like its neighbour may be written
        // as the neighbour's).
        assert!(found.len() >= 40 && found.len() <= 80, "{found:?}");
        assert!(
            found.iter().all(|h| h.deleted <= 1
                && h.inserted.chars().count() <= 1
                && places.iter().any(|&i| h.start == i || h.start == i + 1)),
            "{found:?}"
        );
        // A paragraph rewritten and a typo fixed far from it: the typo stays its own letter.
        let mut both: Vec<char> = old.chars().collect();
        both.splice(3_000..3_001, ['#']);
        let paragraph = text(&mut seed, 600, &letters);
        both.splice(1_000..1_600, paragraph.chars());
        let both: String = both.into_iter().collect();
        let found = check(&old, &both);
        assert!(
            found.iter().all(|h| h.start < 1_700 || h.start == 3_000),
            "{found:?}"
        );
        assert_eq!(found.last().map(|h| h.deleted), Some(1), "{found:?}");
    }

    #[test]
    fn words_retyped_are_replaced_whole_and_a_typo_by_its_letter() {
        // A typo, a word joined to the next: the letters that differ.
        let found = check("Kouame est venu", "Kouamé est venu");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].deleted, found[0].inserted.as_str()), (1, "é"));
        check("vu au marché", "vu aumarché");
        // A sentence retyped: its differing words replaced as typed, not letter by letter.
        let old = "Works on the farm after school.";
        let new = "Seen at the cocoa farm, missing school.";
        let found = check(old, new);
        // Half its words gone: retyped, one replacement up to what both end with.
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].inserted, "Seen at the cocoa farm, missing");
        // A word changed in a sentence: that word.
        let found = check(old, "Works on the farm before school.");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].start >= 18 && found[0].deleted <= 5, "{found:?}");
    }
}
