window.YTD.deleted_tweets.part0 = [
  {
    "tweet" : {
      "retweeted" : false,
      "entities" : { "hashtags" : [ ], "symbols" : [ ], "user_mentions" : [ ], "urls" : [ ] },
      "id_str" : "1626900000000000007",
      "id" : "1626900000000000007",
      "created_at" : "Wed Feb 22 10:00:00 +0000 2023",
      "deleted_at" : "Wed Feb 22 10:05:00 +0000 2023",
      "full_text" : "A thought I took back and never meant to keep.",
      "lang" : "en"
    }
  }
]
