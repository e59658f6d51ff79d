// Subscription URLs: what can be merged, topic patterns and their union, the plan of
// upstream streams for many subscriptions, and the Link header of Mercure discovery.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeSubscription, matchesAny, mercureHubs, parseLinkHeader, planUpstreams, topicMatches,
  unionTopics, unionUrl,
} from '../ssehub.js';

const HUB = 'https://hub.example.com';

test('native live streams with valid topics can be merged; their cursor is set apart', () => {
  const live = describeSubscription(`${HUB}/stream?mode=live&topic=a&topic=b%2F*&lastEventId=urn:ssehub:1-1`);
  assert.equal(live.kind, 'live');
  assert.deepEqual(live.topics, ['a', 'b/*']);
  assert.equal(live.cursor, 'urn:ssehub:1-1');
  assert.equal(live.key, `${HUB}/stream?mode=live&topic=a&topic=b%2F*`);
  assert.equal(live.base, `${HUB}/stream`);
  assert.deepEqual(describeSubscription(`${HUB}/stream?mode=live`).topics, ['default']);
  assert.equal(describeSubscription(`${HUB}/prefix/stream?mode=live&topic=*`).base, `${HUB}/prefix/stream`);
  // An empty cursor is no cursor, and the URL is kept as written when it has none.
  assert.equal(describeSubscription(`${HUB}/stream?mode=live&topic=a&lastEventId=`).cursor, null);
  assert.equal(describeSubscription(`${HUB}/stream?topic=a&mode=live`).key, `${HUB}/stream?topic=a&mode=live`);
});

test('what is not merged: bursts, other parameters, invalid topics, Mercure, other paths', () => {
  assert.equal(describeSubscription(`${HUB}/stream`).kind, 'burst');
  assert.equal(describeSubscription(`${HUB}/stream?topic=a&mode=burst`).kind, 'burst');
  assert.equal(describeSubscription(`${HUB}/stream?mode=live&topic=a&ticket=xyz`).kind, 'url');
  assert.equal(describeSubscription(`${HUB}/stream?mode=live&topic=bad%20topic`).kind, 'url');
  assert.equal(describeSubscription(`${HUB}/stream?mode=live&topic=a/*/b`).kind, 'url');
  assert.equal(describeSubscription(`${HUB}/stream?mode=live&mode=live&topic=a`).kind, 'url');
  assert.equal(describeSubscription(`${HUB}/stream?mode=other`).kind, 'url');
  assert.equal(describeSubscription(`${HUB}/api/topics/stream?limit=5`).kind, 'url');
  const mercure = describeSubscription(`${HUB}/.well-known/mercure?topic=https://example.com/books/{id}&lastEventID=book-1`);
  assert.equal(mercure.kind, 'mercure');
  assert.equal(mercure.cursor, 'book-1');
  assert.equal(mercure.topics, null);
  assert.equal(describeSubscription(`${HUB}/.well-known/mercure?topic=x&last_event_id=earliest`).cursor, 'earliest');
});

test('topic patterns: exact, prefix/* (anything under it, not itself), *', () => {
  assert.ok(topicMatches('a', 'a'));
  assert.ok(!topicMatches('a', 'a/b'));
  assert.ok(topicMatches('a/*', 'a/b'));
  assert.ok(topicMatches('a/*', 'a/b/c'));
  assert.ok(!topicMatches('a/*', 'a'));
  assert.ok(!topicMatches('a/*', 'ab/c'));
  assert.ok(topicMatches('*', 'anything/at/all'));
  assert.ok(matchesAny(['x', 'a/*'], 'a/q'));
  assert.ok(!matchesAny(['x', 'a/*'], 'b'));
});

test('the union drops what another pattern covers and is sorted', () => {
  assert.deepEqual(unionTopics(['b', 'a', 'a', 'a/x', 'a/*', 'a/b/*', 'c/d']), ['a', 'a/*', 'b', 'c/d']);
  assert.deepEqual(unionTopics(['x', '*', 'y/*']), ['*']);
  assert.deepEqual(unionTopics([]), []);
  assert.equal(unionUrl(`${HUB}/stream`, ['a/*', 'b c']), `${HUB}/stream?mode=live&topic=a/*&topic=b%20c`);
});

test('the union matches exactly what the subscriptions match', () => {
  const lists = [['a'], ['a', 'b'], ['b/*'], ['c', 'a'], ['b/x', 'c'], ['d/e/*', 'd/*']];
  const union = unionTopics(lists.flat());
  for (const topic of ['a', 'b', 'b/x', 'b/y/z', 'c', 'd', 'd/e', 'd/e/f', 'e', 'a/b']) {
    assert.equal(matchesAny(union, topic), lists.some((l) => matchesAny(l, topic)), topic);
  }
});

function sub(id, url, cred = 'anon', extra = {}) {
  const d = describeSubscription(url);
  return { id, url, kind: d.kind, key: d.key, base: d.base, topics: d.topics, cred, noUnion: false, ...extra };
}

test('the plan: live streams of one origin, path and credential merge; one alone keeps its URL', () => {
  const plans = planUpstreams([
    sub('1', `${HUB}/stream?mode=live&topic=a`),
    sub('2', `${HUB}/stream?mode=live&topic=a&topic=b`),
    sub('3', `${HUB}/stream?mode=live&topic=b/*`),
    sub('4', `${HUB}/stream?mode=live&topic=c&lastEventId=urn:ssehub:1-1`, 'token-x'),
    sub('5', `${HUB}/other/stream?mode=live&topic=a`),
  ]);
  assert.deepEqual(plans, [
    { key: `anon|${HUB}/stream#0`, url: `${HUB}/stream?mode=live&topic=a&topic=b&topic=b/*`, kind: 'live', members: ['1', '2', '3'] },
    { key: `token-x|${HUB}/stream#0`, url: `${HUB}/stream?mode=live&topic=c&lastEventId=urn:ssehub:1-1`, kind: 'live', members: ['4'] },
    { key: `anon|${HUB}/other/stream#0`, url: `${HUB}/other/stream?mode=live&topic=a`, kind: 'live', members: ['5'] },
  ]);
});

test('the plan: a merged stream holds at most maxTopics patterns; a subscription is never split', () => {
  const subs = [];
  for (let i = 0; i < 10; i++) subs.push(sub(`s${i}`, `${HUB}/stream?mode=live&topic=t${i}a&topic=t${i}b`));
  const plans = planUpstreams(subs, 5);
  assert.deepEqual(plans.map((p) => p.members), [['s0', 's1'], ['s2', 's3'], ['s4', 's5'], ['s6', 's7'], ['s8', 's9']]);
  for (const plan of plans) assert.equal(new URL(plan.url).searchParams.getAll('topic').length, 4);
  // The same set in another order gives the same plan.
  assert.deepEqual(planUpstreams([...subs].reverse(), 5), plans);
});

test('the plan: bursts alone; Mercure and other URLs shared per URL; a refused member on its own', () => {
  const mercure = `${HUB}/.well-known/mercure?topic=x`;
  const plans = planUpstreams([
    sub('1', `${HUB}/stream?topic=a`),
    sub('2', `${HUB}/stream?topic=a`),
    sub('3', mercure),
    sub('4', `${mercure}&lastEventID=book-1`),
    sub('5', `${HUB}/.well-known/mercure?topic=y`),
    sub('6', `${HUB}/stream?mode=live&topic=a`, 'anon', { noUnion: true }),
    sub('7', `${HUB}/stream?mode=live&topic=b`),
  ]);
  assert.deepEqual(plans.map((p) => [p.url, p.members]), [
    [`${HUB}/stream?topic=a`, ['1']],
    [`${HUB}/stream?topic=a`, ['2']],
    [mercure, ['3', '4']],
    [`${HUB}/.well-known/mercure?topic=y`, ['5']],
    [`${HUB}/stream?mode=live&topic=a`, ['6']],
    [`${HUB}/stream?mode=live&topic=b`, ['7']],
  ]);
});

test('Link header: targets resolved, parameters read, quoted commas and semicolons kept', () => {
  const header = '<https://hub.example.com/.well-known/mercure>; rel="mercure", ' +
    '</.well-known/mercure?x=1>; rel="mercure"; last-event-id="a,b;c", <https://example.com/x>; rel=self, ' +
    '<https://other.example.com/hub>; REL="Mercure preload"; title="\\"quoted\\""';
  const links = parseLinkHeader(header, 'https://api.example.com/books/1');
  assert.deepEqual(links, [
    { url: 'https://hub.example.com/.well-known/mercure', params: { rel: 'mercure' } },
    { url: 'https://api.example.com/.well-known/mercure?x=1', params: { rel: 'mercure', 'last-event-id': 'a,b;c' } },
    { url: 'https://example.com/x', params: { rel: 'self' } },
    { url: 'https://other.example.com/hub', params: { rel: 'Mercure preload', title: '"quoted"' } },
  ]);
  assert.deepEqual(mercureHubs(header, 'https://api.example.com/books/1'), [
    'https://hub.example.com/.well-known/mercure',
    'https://api.example.com/.well-known/mercure?x=1',
    'https://other.example.com/hub',
  ]);
  assert.deepEqual(mercureHubs(null, HUB), []);
  assert.deepEqual(mercureHubs('<https://x.example/>; rel="mercurial"', HUB), []);
});

test('the plan: tabs asking for the same topics keep the first one\'s URL (no new stream as they join)', () => {
  const one = sub('1', `${HUB}/stream?mode=live&topic=secret%2F*&lastEventId=urn:ssehub:1-1`);
  assert.equal(planUpstreams([one])[0].url, `${HUB}/stream?mode=live&topic=secret%2F*&lastEventId=urn:ssehub:1-1`);
  const plans = planUpstreams([one, sub('2', `${HUB}/stream?mode=live&topic=secret/*`), sub('3', `${HUB}/stream?topic=secret/x&mode=live&topic=secret/*`)]);
  assert.deepEqual(plans.map((p) => [p.url, p.members]), [[`${HUB}/stream?mode=live&topic=secret%2F*`, ['1', '2', '3']]]);
});
