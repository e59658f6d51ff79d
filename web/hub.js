// What the hub asks of the demo page: the tokens `/api/ping` says it wants, told in the feed
// instead of failing silently (the page itself has no token; a deployment's own page sets the
// token cookie or sends Authorization headers). Imported by app.js.
//
// authNotices(feed) asks once and adds a notice for each token the hub requires or reads.
export function authNotices(feed) {
  fetch('/api/ping', { headers: { 'Accept': 'application/json' } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (ping) {
      var auth = ping && ping.auth;
      if (!auth) return;
      if (auth.subscriber_token_required) {
        feed.notice('warning', 'This hub requires a subscriber token: streams opened from this page are refused (401) unless a token cookie (mercureAuthorization) is set for it.');
      } else if (auth.subscribe) {
        feed.notice('info', 'This hub reads subscriber tokens: this page, which has none, receives public events only.');
      }
      if (auth.publish) {
        feed.notice('warning', 'This hub requires a publisher token: publishing from this page is refused (401). Publish with a token, e.g. curl -H "Authorization: Bearer $(ssehub token --publish \'*\')".');
      }
    }, function () { /* the stream and publish paths report reachability themselves */ });
}
