//! How a text field's edit is written into its Automerge text: as the few replacements a person
//! made, found by a diff of bounded cost.
//!
//! Automerge's own `update_text` diffs the whole text character by character (Myers, without a
//! bound on the work) and writes each difference as a splice, whose cost grows with its
//! position in the text: a long note rewritten or pasted over took minutes to save on a phone,
//! holding the store meanwhile. Here the common start and end are set aside first, the diff of
//! what lies between stops at `MAX_EDIT_DISTANCE`, differences separated by a few unchanged
//! characters are written as one replacement, and at most `MAX_HUNKS` replacements are written.
//! A person's edits (a word fixed here, a sentence added there) stay separate replacements, so
//! that another device's concurrent edits elsewhere in the text merge as before; a rewrite is
//! one replacement.

/// The most characters deleted plus inserted that the diff looks for before it writes what lies
/// between the common start and end as one replacement.
const MAX_EDIT_DISTANCE: usize = 500;

/// The most character comparisons the diff makes (its work grows with the text's length times
/// the edit distance).
const MAX_STEPS: usize = 5_000_000;

/// Differences separated by fewer unchanged characters than this are one replacement.
const JOIN_UNDER: usize = 8;

/// The most replacements an edit is written as; beyond, the span from the first to the last is
/// one replacement.
const MAX_HUNKS: usize = 32;

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
    let Some(steps) = edit_steps(a, b) else {
        return whole();
    };
    let mut found: Vec<Hunk> = Vec::new();
    let (mut x, mut y) = (0, 0);
    let mut i = 0;
    while i < steps.len() {
        if steps[i] == Step::Equal {
            x += 1;
            y += 1;
            i += 1;
            continue;
        }
        let (start_x, start_y) = (x, y);
        while i < steps.len() && steps[i] != Step::Equal {
            match steps[i] {
                Step::Delete => x += 1,
                _ => y += 1,
            }
            i += 1;
        }
        let hunk = Hunk {
            start: prefix + start_x,
            deleted: x - start_x,
            inserted: b[start_y..y].iter().collect(),
        };
        match found.last_mut() {
            // Close to the one before: one replacement, the characters between included.
            Some(last) if prefix + start_x - (last.start + last.deleted) < JOIN_UNDER => {
                let between = last.start + last.deleted - prefix..start_x;
                let gap = start_y - between.len();
                last.inserted.extend(&b[gap..y]);
                last.deleted = prefix + x - last.start;
            }
            _ => found.push(hunk),
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

/// The shortest edit from `a` to `b` (Myers' greedy algorithm), one step per character, or
/// `None` when it is longer than `MAX_EDIT_DISTANCE` or costs more than `MAX_STEPS`.
fn edit_steps(a: &[char], b: &[char]) -> Option<Vec<Step>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = MAX_EDIT_DISTANCE.min(a.len() + b.len()) as isize;
    let offset = max_d + 1;
    let at = |k: isize| (k + offset) as usize;
    let mut v = vec![0isize; 2 * max_d as usize + 3];
    // The furthest reach of each diagonal before each round, to walk the path back.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut work = 0usize;
    for d in 0..=max_d {
        trace.push(v[at(-d)..=at(d)].to_vec());
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
fn walk_back(trace: &[Vec<isize>], n: usize, m: usize) -> Vec<Step> {
    let reach = |d: isize, k: isize| trace[d as usize][(k + d) as usize];
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
    fn a_persons_edits_stay_apart_and_a_rewrite_is_one_replacement() {
        let mut seed = 5;
        let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyz ".chars().collect();
        let old = text(&mut seed, 4_000, &letters);
        // A word fixed near the start and a sentence added near the end: two replacements,
        // each where the person typed.
        let mut new: Vec<char> = old.chars().collect();
        new.splice(100..104, "fixé".chars());
        new.splice(3_500..3_500, " Revue le lundi.".chars());
        let new: String = new.into_iter().collect();
        let found = check(&old, &new);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].start, found[1].start), (100, 3_500));
        // A rewrite of it all, and the same text in capitals: one replacement each.
        assert_eq!(check(&old, &text(&mut seed, 4_000, &letters)).len(), 1);
        assert_eq!(check(&old, &old.to_uppercase()).len(), 1);
        // Many small edits far apart: at most `MAX_HUNKS` replacements.
        let mut many: Vec<char> = old.chars().collect();
        for i in (0..many.len()).step_by(60) {
            many[i] = '#';
        }
        let many: String = many.into_iter().collect();
        assert_eq!(check(&old, &many).len(), 1);
    }
}
