// Matchmaking rules and the matcher's explanations, said in words for players. Pure functions:
// no page state, so the queue page and anything else can use them.

// `sentence` has one copy for every page (lobby/words.js, room.js uses it too); re-exported here
// for queue.js.
import { sentence } from "../lobby/words.js";

export { sentence };

export function words(name) {
  return String(name).replace(/[_-]+/g, " ").trim() || String(name);
}

export function label(name) {
  const text = words(name);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export function seconds(value) {
  const total = Math.max(0, Math.round(value));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  const rest = total % 60;
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

export function clock(value) {
  const total = Math.max(0, Math.floor(value));
  const minutes = Math.floor(total / 60);
  return `${minutes}:${String(total % 60).padStart(2, "0")}`;
}

/** The profile's rules as steps: step 0 the `initial` rules, then one per expansion. */
export function parseRules(rules) {
  const initial = (rules && rules.initial) || {};
  let playerCount = null;
  const order = [];
  const first = {};
  for (const [name, spec] of Object.entries(initial)) {
    const rule = { name, type: spec.type, ...(spec.attributes || {}) };
    // A leaderboard name: the server takes this number from the player's rating there.
    if (spec.rating) rule.rating = spec.rating;
    first[name] = rule;
    if (spec.type === "player_count") playerCount = name;
    else order.push(name);
  }
  const steps = [{ after: 0, rules: first, changes: [] }];
  const expansions = (rules && rules.expansions) || {};
  const keys = Object.keys(expansions)
    .map((key) => [Number(key), key])
    .filter(([value]) => Number.isFinite(value) && value > 0)
    .sort((a, b) => a[0] - b[0]);
  for (const [after, key] of keys) {
    const previous = steps[steps.length - 1].rules;
    const next = { ...previous };
    const changes = [];
    for (const [name, change] of Object.entries(expansions[key] || {})) {
      if (!next[name] || !change || typeof change !== "object") continue;
      const fields = change.attributes && typeof change.attributes === "object" ? change.attributes : change;
      const updated = { ...next[name] };
      for (const [field, value] of Object.entries(fields)) if (field !== "type") updated[field] = value;
      next[name] = updated;
      changes.push({ before: previous[name], after: updated });
    }
    steps.push({ after, rules: next, changes });
  }
  return {
    playerCount,
    attributeRules: order.map((name) => first[name]),
    steps,
  };
}

/** "1v1", "2v2", "Co-op, 2–4 players", "Free-for-all, 8 players", "3 teams of 2–4 players". */
export function teamShape(rule) {
  if (!rule) return "";
  const { team_count: teams, min_team_size: low, max_team_size: high } = rule;
  const size = low === high ? `${high}` : `${low}–${high}`;
  const players = high === 1 ? "player" : "players";
  if (teams === 1) return `Co-op, ${size} ${players}`;
  if (low === high && high === 1 && teams > 2) return `Free-for-all, ${teams} players`;
  if (low === high && teams <= 4) return Array(teams).fill(high).join("v");
  return `${teams} teams of ${size} ${players}`;
}

export function teamSentence(rule) {
  if (!rule) return "";
  const { team_count: teams, min_team_size: low, max_team_size: high } = rule;
  const size = low === high ? `${high}` : `${low} to ${high}`;
  const players = high === 1 ? "player" : "players";
  if (teams === 1) return `One team of ${size} ${players}`;
  return `${teams} teams of ${size} ${players}`;
}

export function describeRule(rule) {
  const name = words(rule.name);
  switch (rule.type) {
    case "player_count":
      return teamSentence(rule);
    case "string_equality":
      return `The same ${name} for everyone`;
    case "number_difference":
      return rule.rating
        ? `${label(rule.name)} within ${rule.max_difference} of each other (from ratings)`
        : `${label(rule.name)} within ${rule.max_difference} of each other`;
    case "intersection":
      return `${label(rule.name)}: at least ${rule.overlap} in common`;
    case "latencies":
      return (
        `A region where everyone’s ping is at most ${rule.max_latency} ms, ` +
        `and within ${rule.difference} ms of each other`
      );
    default:
      return label(rule.name);
  }
}

export function describeChange({ before, after }) {
  switch (after.type) {
    case "player_count":
      return after.min_team_size < before.min_team_size
        ? `Teams may be smaller: ${teamSentence(after).toLowerCase()}`
        : teamSentence(after);
    case "number_difference":
      return `${label(after.name)} within ${after.max_difference} (was ${before.max_difference})`;
    case "intersection":
      return `${label(after.name)}: at least ${after.overlap} in common (was ${before.overlap})`;
    case "latencies":
      return (
        `Ping at most ${after.max_latency} ms, within ${after.difference} ms of each other ` +
        `(was ${before.max_latency} and ${before.difference})`
      );
    default:
      return describeRule(after);
  }
}

// What keeps a ticket waiting, said for a player. The server sends it as data (the ticket's
// `explanation`: kind, rule, type, step, parameters, problem, needed, found, quality; see
// matchmaking/explanations.py); every word a player reads about it is written here.
export function explain(why) {
  if (!why || why.kind === "waiting") {
    return { lead: "Nothing yet: the queue has not looked at your search", detail: "It does every second or so." };
  }
  const quality =
    typeof why.quality === "number" ? ` Predicted match quality with the nearest player: ${why.quality.toFixed(2)}.` : "";
  if (why.kind === "rule" && why.problem === "party_too_large") {
    const most = (why.parameters || {}).max_team_size;
    return {
      lead: "A smaller party",
      detail: `Your party of ${why.party_size} is larger than a team here (at most ${most}). Cancel, then queue in smaller groups.`,
    };
  }
  if (why.kind === "rule" && why.problem === "no_region") {
    const most = (why.parameters || {}).max_latency;
    return {
      lead: "A region you can play in",
      detail: `None of your regions is within ${most} ms (your best: ${why.best_region} at ${why.best_ms} ms).`,
    };
  }
  if (why.kind === "rule") {
    const name = words(why.rule || "");
    const leads = {
      player_count: "More players",
      string_equality: `Players with the same ${name}`,
      number_difference: `Players with a ${name} close to yours`,
      latencies: "Players near a region you can play in",
      intersection: `Players who share a ${name} value with you`,
    };
    return { lead: leads[why.type] || sentence(why.text), detail: `${missing(why)}${quality}` };
  }
  if (why.kind === "no_group") {
    return {
      lead: "A group that fits every rule at once",
      detail:
        "Other players pass each rule on its own, but no group passes them all together yet " +
        `(latency spread, party sizes, or newer players’ stricter rules).${quality}`,
    };
  }
  if (why.kind === "invalid") {
    const which = why.rule ? ` Your ${words(why.rule)} no longer fits it.` : "";
    return {
      lead: "Nothing can match: this queue’s rules changed since you joined it",
      detail: `${which} Cancel, then queue again.`.trim(),
    };
  }
  return { lead: sentence(why.text) || "Still looking", detail: "" };
}

// "No 3 other players within 10 of your skill (found 1)."
function missing(why) {
  if (why.problem !== "too_few") return sentence(why.text);
  const who = why.needed === 1 ? "No other player" : `No ${why.needed} other players`;
  const p = why.parameters || {};
  const name = words(why.rule || "");
  const where = {
    player_count: "searching",
    string_equality: `with your ${name}`,
    number_difference: p.max_difference !== undefined ? `within ${p.max_difference} of your ${name}` : `close to your ${name}`,
    latencies: p.max_latency !== undefined ? `within ${p.max_latency} ms of a region you can use` : "near a region you can use",
    intersection: `sharing ${p.overlap > 1 ? `${p.overlap} ${name} values` : `a ${name} value`} with you`,
  }[why.type];
  if (!where) return sentence(why.text);
  const found = why.found === null || why.found === undefined ? "" : ` (found ${why.found})`;
  return `${who} ${where}${found}.`;
}
